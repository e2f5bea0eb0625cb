"""The nightly regression sweep: kernels × reproducers, compared night to night."""
