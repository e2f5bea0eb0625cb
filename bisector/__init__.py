"""bisector: find the Linux kernel commit that introduced (or fixed) a bug.

Data flow, one module per stage: reproducer → kernel → image → vm → guest →
verdict → (bisect → store → report; sweep) → cli.
"""

__version__ = "0.1.0"
