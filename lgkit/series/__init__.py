"""The notebook series: steps the notebooks call, their outputs, the papermill runner, the index page.

Notebooks import this package as ``S``: ``S.family_stats``, ``S.Outputs`` and the rest of
``steps``, ``summaries``, ``outputs``, ``findings``, ``controls`` (06's length controls),
``teaching`` (runs to read, the closing text), ``verdicts`` (the reader's findings table) and
``showtext`` (text from data shown escaped, never as Markdown). ``runner`` and
``report`` run and summarise the series (``lgkit run``). May import every other lgkit package.
"""

from lgkit.series.controls import *  # noqa: F403
from lgkit.series.controls import __all__ as _controls_all
from lgkit.series.findings import *  # noqa: F403
from lgkit.series.findings import __all__ as _findings_all
from lgkit.series.outputs import *  # noqa: F403
from lgkit.series.outputs import __all__ as _outputs_all
from lgkit.series.showtext import *  # noqa: F403
from lgkit.series.showtext import __all__ as _showtext_all
from lgkit.series.steps import *  # noqa: F403
from lgkit.series.steps import __all__ as _steps_all
from lgkit.series.summaries import *  # noqa: F403
from lgkit.series.summaries import __all__ as _summaries_all
from lgkit.series.teaching import *  # noqa: F403
from lgkit.series.teaching import __all__ as _teaching_all
from lgkit.series.verdicts import *  # noqa: F403
from lgkit.series.verdicts import __all__ as _verdicts_all

__all__ = [
    *_steps_all,
    *_summaries_all,
    *_outputs_all,
    *_findings_all,
    *_controls_all,
    *_showtext_all,
    *_teaching_all,
    *_verdicts_all,
]
