"""Search engines behind one small interface (:class:`Bisection`) and the loop that drives them.

* :class:`ListBisection` — an ordered list of prebuilt kernels;
* :class:`GitBisection` — commits, through ``git bisect`` itself;
* :class:`Bisector` — the loop; :class:`Handler` — its progress events.

Engines are pure with respect to kernels: tests drive them with scripted verdicts.
"""

from .base import Bisection
from .gitsearch import GitBisection, parse_bisect_log
from .listsearch import ListBisection
from .loop import Bisector, Handler, Recorder, Tester

__all__ = ["Bisection", "Bisector", "GitBisection", "Handler", "ListBisection", "Recorder",
           "Tester", "parse_bisect_log"]
