"""Reports: a dependency-free HTML builder (``Report``) and matplotlib grid plots (``irlhf.report.plots``).

``plots`` is not imported here so that importing ``irlhf.report`` (e.g. from the CLI) stays fast;
use ``from irlhf.report import plots`` where figures are drawn.
"""

from irlhf.report.html import Report

__all__ = ["Report"]
