"""Researcher-facing API, method for method as ACRO 1.0.x: each call returns what pandas or
statsmodels would, and records the output with its verdict for the airlock."""

from __future__ import annotations

import linecache
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lnds_spe.errors import SPEError
from lnds_spe.sdc import rules
from lnds_spe.sdc.config import SDCConfig, load_config
from lnds_spe.sdc.ledger import CountTable, count_table_from_frame, differencing_findings, read_ledger
from lnds_spe.sdc.records import (
    Record,
    Records,
    outcome_frame,
    release_folder_free,
    session_summary,
    write_evidence,
)
from lnds_spe.sdc.tables import (
    CheckedTable,
    MaskMismatchError,
    agg_callable,
    aggfunc_label,
    aggfunc_name,
    as_list,
    checked_crosstab,
    combine_blocks,
    label_block,
    rounded_table,
)

logger = logging.getLogger("lnds_spe.sdc")


def _caller_command() -> str:
    """Source line of the researcher's call, recorded as ACRO does (cheap: no inspect.stack)."""
    package_dir = str(Path(__file__).parent)
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(package_dir):
        frame = frame.f_back
    if frame is None:
        return ""
    return linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()


class NoValuesError(SPEError, ValueError):
    """A table of values was asked for without naming a single values column."""


class ArtefactExtensionBlockedError(SPEError, ValueError):
    """A plot or custom output has a file extension the config blocks."""


MITIGATIONS = ("none", "suppress", "round")
_AGGFUNC_ANALYSIS = {None: "FrequencyTable", "count": "FrequencyTable", "mode": "ModeCalculation",
                     "agg_mode": "ModeCalculation", "median": "Median", "mean": "Mean",
                     "std": "StandardDeviation", "sum": "Sum", "min": "Minimum", "max": "Maximum"}


def _variable_names(keys: list, values: Any) -> dict[str, Any]:
    """FAIR description of a table: its dependent and independent variables, as ACRO's."""
    independent = []
    for key in keys:
        for item in [key] if isinstance(key, pd.Series) else as_list(key):
            name = item if isinstance(item, str) else getattr(item, "name", None)
            if name is not None:
                independent.append(str(name))
    dependent = values if isinstance(values, str) or values is None else getattr(
        values, "name", None)
    return {"dependent": "unknown" if dependent is None else str(dependent),
            "independent": independent}


class ACRO:
    """Checks each output as it is made; `finalise` writes the folder checkers review.

    A session takes the same calls as ACRO 1.0.x; every table, plot and model it returns is
    recorded with its verdict ('pass', 'review' or 'fail') for the airlock.

    Parameters
    ----------
    config : str, mapping or path, default 'default'
        The thresholds: a profile name ('default' or 'sdap', 'opensafely'), the path of an
        ACRO-style YAML file, the name of such a file in the working directory without its
        '.yaml', or a mapping of ACRO's config keys.
    suppress : bool, default False
        Start with suppression on: unsafe cells of tables are hidden. Same as
        ``mitigation='suppress'``.
    mitigation : {'none', 'suppress', 'round'}, optional
        How unsafe cells are treated from the start; overrides `suppress` when given. Any
        other value is logged and treated as 'none'.
    round_base : int, optional
        The base tables are rounded to under the 'round' mitigation; defaults to the config's
        ``safe_round_base``.
    federated : bool, optional
        Collect only the evidence behind each output (count tables, degrees of freedom) for a
        trusted aggregator, as ACRO's federated mode; defaults to the config's ``federated``.
    ledger : str or path-like, optional
        A ledger file of released tables (JSON lines): every new count table is also checked
        for differencing against them.
    project : str, optional
        Read only this project's tables from `ledger` (default: all of them).
    """

    def __init__(
        self,
        config: str | dict[str, Any] | os.PathLike = "default",
        suppress: bool = False,
        mitigation: str | None = None,
        round_base: int | None = None,
        federated: bool | None = None,
        ledger: str | os.PathLike | None = None,
        project: str | None = None,
    ) -> None:
        """Start a session; the parameters are described in the class docstring."""
        self.config: SDCConfig = load_config("sdap" if config == "default" else config)
        self.mitigation = mitigation if mitigation is not None else (
            "suppress" if suppress else "none")
        self.round_base = round_base if round_base is not None else self.config.safe_round_base
        self.federated = bool(self.config.federated if federated is None else federated)
        self.results = Records(self.config.blocked_extensions)
        self._federated_evidence: dict[str, dict[str, Any]] = {}
        self._count_tables: dict[str, tuple[CountTable, dict[tuple[str, ...], tuple[int, int]]]] = {}
        self._released: list[CountTable] = read_ledger(ledger, project) if ledger else []

    @property
    def mitigation(self) -> str:
        """How unsafe cells are treated: 'none', 'suppress' or 'round'."""
        return self._mitigation

    @mitigation.setter
    def mitigation(self, value: str) -> None:
        if value not in MITIGATIONS:
            logger.warning("Mitigation %r is not one of %s: proceeding with none.", value,
                           list(MITIGATIONS))
            value = "none"
        self._mitigation = value

    @property
    def suppress(self) -> bool:
        """True while unsafe cells are suppressed."""
        return self._mitigation == "suppress"

    @suppress.setter
    def suppress(self, value: bool) -> None:
        if value:
            self._mitigation = "suppress"
        elif self._mitigation == "suppress":
            self._mitigation = "none"
        elif self._mitigation == "round":
            logger.warning("Setting suppress=False had no effect because mitigation is "
                           "'round': use disable_rounding() to turn rounding off.")

    @property
    def round_base(self) -> int:
        """The base tables are rounded to under the 'round' mitigation."""
        return self._round_base

    @round_base.setter
    def round_base(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            logger.warning("round_base must be a positive integer, got %r: using %d.", value,
                           self.config.safe_round_base)
            value = self.config.safe_round_base
        self._round_base = value

    # ----- tables -------------------------------------------------------------------------
    def crosstab(
        self,
        index: Any,
        columns: Any,
        values: Any = None,
        rownames: Any = None,
        colnames: Any = None,
        aggfunc: Any = None,
        margins: bool = False,
        margins_name: str = "All",
        dropna: bool = True,
        normalize: bool | str = False,
        weights: Any = None,
        show_suppressed: bool = False,
    ) -> pd.DataFrame:
        """Cross-tabulate two or more factors as pandas.crosstab does, with every cell checked.

        Counts are checked against the threshold (and zeros, class disclosure); a table of values
        also against the n-k dominance and p-percent rules, missing and negative values, extreme
        values (max, min) and modes. Thresholds always use unweighted counts of units.

        Parameters
        ----------
        index : array-like, Series, or list of them
            The values to group by in the rows.
        columns : array-like, Series, or list of them
            The values to group by in the columns.
        values : array-like, optional
            The values to aggregate in each cell; needs `aggfunc`.
        rownames : sequence, optional
            Names for the row variables; as many as there are row arrays.
        colnames : sequence, optional
            Names for the column variables; as many as there are column arrays.
        aggfunc : str, callable or list of them, optional
            How `values` are aggregated ('count', 'sum', 'mean', 'median', 'std', 'min', 'max',
            'mode', ...); needs a single `values` column. A list gives one block of columns per
            function, as pandas does.
        margins : bool, default False
            Add row and column totals. Totals are computed from the shown cells only.
        margins_name : str, default 'All'
            The label of the totals row and column.
        dropna : bool, default True
            As pandas: False also shows the categories of categorical keys that no unit
            has, as empty cells. Units with a missing key are always left out.
        normalize : bool or {'all', 'index', 'columns'}, default False
            Show proportions: of the whole table ('all' or True), of each row ('index') or of
            each column ('columns'). The checks still run on the counts.
        weights : array-like, optional
            Survey weights: the table shows weighted counts, but every threshold is applied to
            the unweighted counts of units.
        show_suppressed : bool, default False
            Accepted for ACRO compatibility and ignored: totals always come from shown cells.

        Returns
        -------
        DataFrame
            The table as pandas gives it, with unsafe cells suppressed (NaN) or rounded when that
            mitigation is on.
        """
        del show_suppressed  # ACRO's deprecated flag: totals always come from shown cells
        if isinstance(values, list) and values and np.ndim(values[0]) == 0:
            values = pd.Series(values)
        if aggfunc is not None and (values is None or isinstance(values, list)):
            raise NoValuesError(
                "If you pass an aggregation function to crosstab you must also specify a "
                "single values column to aggregate over.")
        if isinstance(values, np.ndarray) and values.ndim == 2:
            values = values[:, 0]
        command = _caller_command()
        aggfuncs = aggfunc if isinstance(aggfunc, list) else [aggfunc]
        blocks = [
            checked_crosstab(index, columns, values, rownames, colnames, agg, margins,
                             margins_name, dropna, normalize, weights, self.config,
                             self.suppress)
            for agg in aggfuncs
        ]
        if not isinstance(aggfunc, list):
            checked = blocks[0]
        else:
            names = [aggfunc_label(agg) for agg in aggfuncs]
            table = pd.concat([b.table for b in blocks], axis=1, keys=names)
            labelled = [label_block(b.table, (n,), False) for b, n in zip(blocks, names,
                                                                            strict=True)]
            checked = combine_blocks(table, blocks, labelled)
        return self._finish_table("crosstab", checked, command, aggfuncs, values is None,
                                  [index, columns], values, margins, margins_name)

    def pivot_table(
        self,
        data: pd.DataFrame,
        values: Any = None,
        index: Any = None,
        columns: Any = None,
        aggfunc: Any = "mean",
        fill_value: Any = None,
        margins: bool = False,
        dropna: bool = True,
        margins_name: str = "All",
        sort: bool = True,
    ) -> pd.DataFrame:
        """Make a spreadsheet-style pivot table as pandas.pivot_table does, checked like crosstab.

        Parameters
        ----------
        data : DataFrame
            The unit-level data.
        values : str or list of one str, default None
            The column to aggregate; needed despite the default (kept from ACRO's signature):
            none, or several columns, raise NoValuesError.
        index : str, list of str, optional
            The column(s) to group by in the rows.
        columns : str, list of str, optional
            The column(s) to group by in the columns; none gives a one-way table.
        aggfunc : str, callable or list of them, default 'mean'
            How the values are aggregated ('count', 'sum', 'mean', 'median', 'std', 'min', 'max',
            'mode', ...). A list gives one block of columns per function; a dict is refused.
        fill_value : scalar, optional
            The value shown instead of NaN in cells that have none, after aggregation.
        margins : bool, default False
            Add row and column totals, computed from the shown cells only.
        dropna : bool, default True
            Leave out columns whose entries are all NaN, as pandas does.
        margins_name : str, default 'All'
            The label of the totals row and column.
        sort : bool, default True
            Sort the result by its labels.

        Returns
        -------
        DataFrame
            The pivot table, with unsafe cells suppressed (NaN) or rounded when that mitigation is
            on.
        """
        value_names = as_list(values)
        if not value_names:
            raise NoValuesError("pivot_table needs a values column: pass values='name'.")
        if len(value_names) > 1:
            raise NoValuesError(
                f"pivot_table with multiple values {value_names} is not checked: "
                "make one table per values column.")
        if isinstance(aggfunc, dict):
            raise NoValuesError("pivot_table: pass aggfunc as a name or a list of names.")
        command = _caller_command()
        value = value_names[0]
        aggfuncs = aggfunc if isinstance(aggfunc, list) else [aggfunc]
        rows = [data[n] for n in as_list(index)]
        cols = [data[n] for n in as_list(columns)]
        table = pd.pivot_table(
            data, values=values, index=index, columns=columns,
            aggfunc=[agg_callable(a) for a in aggfuncs] if isinstance(aggfunc, list)
            else agg_callable(aggfunc),
            fill_value=fill_value, margins=margins, dropna=dropna,
            margins_name=margins_name, observed=True, sort=sort,
        )
        blocks, labelled = [], []
        for agg in aggfuncs:
            block = checked_crosstab(rows, cols, data[value], None, None, agg, margins,
                                     margins_name, dropna, False, None, self.config,
                                     self.suppress)
            prefix = ((aggfunc_label(agg),) if isinstance(aggfunc, list) else ()) + (
                (value,) if isinstance(values, list) or not cols else ())
            blocks.append(block)
            labelled.append(label_block(block.table, prefix, one_way=not cols))
        checked = combine_blocks(table, blocks, labelled)
        return self._finish_table("pivot_table", checked, command, aggfuncs,
                                  aggfuncs == ["count"], [index, columns], value, margins,
                                  margins_name)

    def _finish_table(
        self, method: str, checked: CheckedTable, command: str, aggfuncs: list,
        frequency: bool, keys: list, values: Any, margins: bool, margins_name: str,
    ) -> pd.DataFrame:
        """Apply the rounding mitigation, then record the output (or its evidence)."""
        analyses = [_AGGFUNC_ANALYSIS.get(aggfunc_name(a), "Custom") for a in aggfuncs]
        if self.federated:
            self._store_evidence(command, analyses, {"count_table": checked.counts.to_csv()})
            return checked.table
        exception = ""
        if self.suppress and checked.hidden.any():
            exception = "Suppression automatically applied where needed"
        if self._mitigation == "round":
            additive = all(aggfunc_name(a) in (None, "count", "sum") for a in aggfuncs)
            checked.table = rounded_table(checked.table, self.round_base, margins, additive)
            checked.notes.append(f"rounded to the nearest {self.round_base}")
            exception = f"Rounding automatically applied to nearest {self.round_base}"
        fair = {"analyses": analyses, "variables": _variable_names(keys, values)}
        record = self._record_table(method, checked, command, aggfuncs, frequency, fair)
        record.exception = exception
        return checked.table

    def _store_evidence(self, command: str, analyses: list[str], tables: dict[str, str],
                        dof: float | None = None) -> None:
        """Federated mode: keep the evidence behind an output (CSV tables, dof) for a trusted
        aggregator instead of a verdict; the output number is used up as ACRO does."""
        uid = f"output_{self.results.output_id}"
        self.results.output_id += 1
        self._federated_evidence[uid] = {"command": command, "analysis_names": analyses,
                                         "variable_types": {}, "dof": dof,
                                         "interim_tables": tables}

    def _record_table(
        self, method: str, checked: CheckedTable, command: str, aggfuncs: list,
        frequency: bool, fair: dict[str, Any],
    ) -> Record:
        """Store a table output and run the differencing checks on frequency tables."""
        shape = checked.table.shape
        wrong = [name for name, mask in checked.flags.items() if mask.shape != shape]
        if wrong:
            raise MaskMismatchError(
                f"{method}: the masks {wrong} do not fit the {shape[0]} x {shape[1]} table; "
                "the output was not recorded. Report this as a bug.")
        names = [None if a is None else str(aggfunc_name(a)) for a in aggfuncs]
        properties: dict[str, Any] = {
            "method": method, "aggfunc": names[0] if len(names) == 1 else names,
            "mitigation": self._mitigation, "suppressed": bool(checked.hidden.any()),
            "notes": checked.notes}
        if self._mitigation == "round":
            properties["round_base"] = self.round_base
        record = self.results.add(
            status=checked.verdict,
            output_type="table",
            properties=properties,
            command=command,
            summary=checked.summary,
            outputs=[checked.table],
            flags=dict(checked.flags),
            outcome=outcome_frame(checked.table, checked.flags),
            fair=fair,
        )
        if frequency and len(aggfuncs) == 1:
            self._check_differencing(record, checked)
        return record

    def _check_differencing(self, record: Record, checked: CheckedTable) -> None:
        """Compare a new count table with the session's and the released ones."""
        rows, cols = checked.counts.shape
        hidden = checked.hidden[:rows, :cols]
        table = count_table_from_frame(record.uid, checked.counts, hidden)
        positions = dict(zip(table.cells, np.ndindex(rows, cols), strict=True))
        earlier = [t for t, _ in self._count_tables.values()] + self._released
        self._count_tables[record.uid] = (table, positions)
        for finding in differencing_findings(table, earlier, self.config.safe_threshold):
            for uid in (finding.output, finding.other):
                if uid in self._count_tables and uid in self.results.results:
                    cells = finding.cells if uid == finding.output else ()
                    self._flag_differencing(uid, cells, finding.reason)

    def _flag_differencing(self, uid: str, cells: tuple, reason: str) -> None:
        """Mark an output as failing differencing, flagging the recoverable cells."""
        record = self.results.get(uid)
        _, positions = self._count_tables[uid]
        shape = record.outputs[0].shape
        mask = record.flags.get(rules.DIFFERENCING, np.zeros(shape, dtype=bool))
        for cell in cells:
            if cell in positions:
                mask[positions[cell]] = True
        record.flags[rules.DIFFERENCING] = mask
        record.status = "fail"
        record.summary = f"fail; differencing: {reason}; " + record.summary.split("; ", 1)[-1]
        record.outcome = outcome_frame(record.outputs[0], record.flags)

    # ----- plots ----------------------------------------------------------------------------
    def hist(
        self,
        data: pd.DataFrame,
        column: str,
        bins: int | Any = 10,
        filename: str = "histogram.png",
        **kwargs: Any,
    ) -> str | None:
        """Draw a histogram of one column and save it under acro_artifacts/.

        Bins with fewer units than the threshold fail; the outermost bin edges (the column's
        minimum and maximum unless `range` is given) are flagged for review. While suppressing, a
        failing histogram is drawn without its data.

        Parameters
        ----------
        data : DataFrame
            The unit-level data.
        column : str
            The column to draw; non-numeric values and NaN are dropped. A list of columns is not
            supported (a warning is logged and nothing is made).
        bins : int or sequence, default 10
            The number of equal-width bins, or the bin edges, as numpy.histogram takes them.
        filename : str, default 'histogram.png'
            The file name of the plot; a taken name gets _1, _2, ... before its suffix. A blocked
            extension makes nothing.
        **kwargs
            Further options; ``range=(low, high)`` sets the outer bin edges.

        Returns
        -------
        str or None
            The path of the saved plot, or None when nothing was drawn (several columns, an empty
            column, a blocked extension, or federated mode).
        """
        if self.results.is_blocked(filename):
            return None
        if isinstance(column, list):
            logger.warning("Calculating histogram for more than one columns is not currently "
                           "supported. Please do each column separately.")
            return None
        command = _caller_command()
        values = pd.to_numeric(data[column], errors="coerce").dropna().to_numpy()
        if values.size == 0:
            logger.warning("Column %s is empty after dropping NaN. \nEmpty Histogram not "
                           "produced.", column)
            self.results.add(status="fail", output_type="histogram",
                             properties={"method": "histogram"}, command=command,
                             summary="fail; empty column after dropping NaN", outputs=[])
            return None
        counts, edges = np.histogram(values, bins=bins, range=kwargs.get("range"))
        if self.federated:
            self._store_evidence(command, ["Histogram"],
                                 {"count_table": pd.Series(counts).to_csv()})
            return None
        flags = {rules.THRESHOLD: rules.threshold_mask(
            counts, self.config.safe_threshold, self.config.zeros_are_disclosive)[None, :]}
        verdict = rules.verdict_for(flags)
        summary = f"{verdict}; bins below threshold: {int(flags[rules.THRESHOLD].sum())}"
        if kwargs.get("range") is None:
            summary += "; review: the outermost bin edges are the data's minimum and maximum"
        shown = values
        if verdict == "fail" and self.suppress:
            logger.warning("Histogram will not be shown as the %s column is disclosive.", column)
            summary += "; Disclosive Histogram Redacted."
            shown = np.ones_like(values)
        path = _artefact_name(filename)
        _save_plot(lambda axes: (axes.hist(shown, bins=edges if shown is values else bins),
                                 axes.set_xlabel(column)), path)
        table = pd.DataFrame([counts], columns=[
            f"[{a:g}, {b:g}]" for a, b in zip(edges[:-1], edges[1:], strict=True)])
        self.results.add(
            status=verdict, output_type="histogram",
            properties={"method": "histogram", "bin_edges": [float(e) for e in edges],
                        "bin_counts": [int(c) for c in counts]},
            command=command, summary=summary, outputs=[str(path)], flags=flags,
            outcome=outcome_frame(table, flags),
            fair={"variables": {"dependent": "unknown", "independent": [str(column)]}},
        )
        return str(path)

    def pie(self, data: pd.DataFrame, column: str, filename: str = "pie.png",
            **kwargs: Any) -> str | None:
        """Draw a pie chart of a categorical column's counts and save it under acro_artifacts/.

        Categories with fewer units than the threshold fail; while suppressing, a failing chart is
        drawn without its counts.

        Parameters
        ----------
        data : DataFrame
            The unit-level data.
        column : str
            The categorical column whose categories are counted.
        filename : str, default 'pie.png'
            The file name of the plot; a taken name gets _1, _2, ... before its suffix. A blocked
            extension makes nothing.
        **kwargs
            Passed on to matplotlib's ``Axes.pie``.

        Returns
        -------
        str or None
            The path of the saved plot, or None for a blocked extension or in federated mode.
        """
        if self.results.is_blocked(filename):
            return None
        counts = data[column].value_counts()
        if self.federated:
            self._store_evidence(_caller_command(), ["PieChart"], {"count_table": counts.to_csv()})
            return None
        flags = {rules.THRESHOLD: rules.threshold_mask(
            counts.to_numpy(), self.config.safe_threshold, True)[:, None]}
        verdict = rules.verdict_for(flags)
        small = int(flags[rules.THRESHOLD].sum())
        summary = f"{verdict}; categories below threshold: {small}"
        shown = counts
        if verdict == "fail" and self.suppress:
            logger.warning("Pie chart will not be shown as the %s column is disclosive.", column)
            summary += "; Pie Chart Redacted."
            shown = pd.Series(0.01, index=counts.index)
        else:
            summary += "; Please also check for missing categories."
        path = _artefact_name(filename)
        _save_plot(lambda axes: axes.pie(shown.to_numpy(), labels=shown.index, **kwargs), path)
        table = counts.to_frame()
        self.results.add(
            status=verdict, output_type="pie chart", properties={"method": "pie"},
            command=_caller_command(), summary=summary, outputs=[str(path)], flags=flags,
            outcome=outcome_frame(table, flags),
            fair={"variables": {"dependent": "unknown", "independent": [str(column)]}},
        )
        return str(path)

    def surv_func(
        self, time: Any, status: Any, output: str = "table", entry: Any = None,
        title: str = "Survival function", freq_weights: Any = None, exog: Any = None,
        bw_factor: float = 1.0, filename: str = "kaplan-meier.png",
    ) -> Any:
        """Estimate a Kaplan-Meier survival function with statsmodels' SurvfuncRight.

        Rows with fewer units at risk than ``survival_safe_threshold`` fail.

        Parameters
        ----------
        time : array-like
            The time of each unit's event or censoring.
        status : array-like
            1 where the event happened at `time`, 0 where the unit was censored then.
        output : {'table', 'plot'}, default 'table'
            What to make and record: the survival table or its plot. Anything else records
            nothing and returns None, as ACRO does.
        entry : array-like, optional
            Entry times, for left truncation (a unit is not at risk before it entered).
        title : str, default 'Survival function'
            The title of the fitted function and of the plot.
        freq_weights : array-like, optional
            Frequency weights of the units.
        exog : array-like, optional
            Covariates used to allow for censoring that depends on them.
        bw_factor : float, default 1.0
            Band-width multiplier of the kernel estimate; used only with `exog`.
        filename : str, default 'kaplan-meier.png'
            The file name of the plot (``output='plot'``); a blocked extension makes nothing.

        Returns
        -------
        DataFrame, tuple or None
            The survival table for 'table'; (axes, path of the saved plot) for 'plot' (in
            federated mode the axes are None); None for any other output or a blocked extension.
        """
        import statsmodels.api as sm

        if output not in ("table", "plot"):
            return None
        if output == "plot" and self.results.is_blocked(filename):
            return None
        fitted = sm.SurvfuncRight(time, status, entry, title, freq_weights, exog, bw_factor)
        table = fitted.summary()
        if self.federated:
            self._store_evidence(_caller_command(), ["KaplanMeier"],
                                 {"count_table": table["num at risk"].to_csv()})
            if output == "table":
                return table
            path = _artefact_name(filename)
            fitted.plot().savefig(path)
            return None, str(path)
        at_risk = table["num at risk"].to_numpy()
        mask = np.repeat((at_risk < self.config.survival_safe_threshold)[:, None],
                         table.shape[1], axis=1)
        flags = {rules.THRESHOLD: mask}
        verdict = rules.verdict_for(flags)
        few = int(mask[:, 0].sum())
        summary = (f"KaplanMeier : {verdict}; rows with fewer than "
                   f"{self.config.survival_safe_threshold} at risk: {few}")
        fair = {"variables": {"dependent": str(getattr(status, "name", "status")),
                              "independent": [str(getattr(time, "name", "time"))]}}
        if output == "table":
            self.results.add(
                status=verdict, output_type="table", properties={"method": "surv func"},
                command=_caller_command(), summary=summary, outputs=[table], flags=flags,
                outcome=outcome_frame(table, flags), fair=fair,
            )
            return table
        path = _artefact_name(filename)
        figure = fitted.plot()
        figure.axes[0].set_title(title)
        figure.savefig(path)
        self.results.add(
            status=verdict, output_type="survival plot", properties={"method": "surv_func"},
            command=_caller_command(), summary=summary, outputs=[str(path)], fair=fair,
        )
        return figure.axes[0], str(path)

    # ----- regressions ----------------------------------------------------------------------
    def _record_model(self, method: str, fitted: Any) -> Any:
        """Check residual degrees of freedom and store the summary tables."""
        dof = float(fitted.df_resid)
        command = _caller_command()
        analysis = {"logit": "Logit", "probit": "Probit"}.get(method.rstrip("r"),
                                                               "GeneralLinearModel")
        if self.federated:
            self._store_evidence(command, [analysis], {}, int(dof) if dof.is_integer() else dof)
            return fitted
        fails = rules.dof_fails(dof, self.config.safe_dof_threshold)
        verdict = "fail" if fails else "pass"
        comparison = "<" if fails else ">="
        summary = f"{verdict}; dof={dof:g} {comparison} {self.config.safe_dof_threshold}"
        tables = [pd.DataFrame(t.data) for t in fitted.summary().tables]
        self.results.add(
            status=verdict, output_type="regression", properties={"method": method, "dof": dof},
            command=command, summary=summary, outputs=tables,
            fair={"analyses": [analysis], "variables": {
                "dependent": str(fitted.model.endog_names),
                "independent": [str(n) for n in fitted.model.exog_names]}},
        )
        return fitted

    def ols(self, endog: Any, exog: Any = None, missing: str = "none", hasconst: Any = None,
            **kwargs: Any) -> Any:
        """Fit an ordinary least squares model (statsmodels OLS) and check its degrees of freedom.

        A model with fewer residual degrees of freedom than ``safe_dof_threshold`` fails.

        Parameters
        ----------
        endog : array-like
            The dependent variable.
        exog : array-like, optional
            The explanatory variables; add a constant yourself if the model needs one.
        missing : {'none', 'drop', 'raise'}, default 'none'
            What statsmodels does with rows holding NaN.
        hasconst : bool, optional
            Whether `exog` holds a constant; statsmodels detects it when None.
        **kwargs
            Further arguments of statsmodels.api.OLS.

        Returns
        -------
        RegressionResults
            The fitted statsmodels results.
        """
        import statsmodels.api as sm

        return self._record_model(
            "ols", sm.OLS(endog, exog, missing=missing, hasconst=hasconst, **kwargs).fit())

    def olsr(self, formula: str, data: Any, subset: Any = None, drop_cols: Any = None,
             *args: Any, **kwargs: Any) -> Any:
        """Fit an ordinary least squares model from an R-style formula and check its degrees of freedom.

        Parameters
        ----------
        formula : str
            The model, e.g. ``'income ~ age + C(region)'``.
        data : DataFrame
            The data the formula's names refer to.
        subset : array-like, optional
            The rows of `data` to use.
        drop_cols : list of str, optional
            Columns to drop from the design matrix.
        *args
            Further positional arguments of statsmodels.formula.api.ols.
        **kwargs
            Further keyword arguments of statsmodels.formula.api.ols.

        Returns
        -------
        RegressionResults
            The fitted statsmodels results.
        """
        import statsmodels.formula.api as smf

        return self._record_model(
            "olsr", smf.ols(formula, data, subset, drop_cols, *args, **kwargs).fit())

    def logit(self, endog: Any, exog: Any, missing: str | None = None,
              check_rank: bool = True) -> Any:
        """Fit a logit model (statsmodels Logit) and check its degrees of freedom.

        A model with fewer residual degrees of freedom than ``safe_dof_threshold`` fails.

        Parameters
        ----------
        endog : array-like
            The binary dependent variable (0 or 1).
        exog : array-like
            The explanatory variables; add a constant yourself if the model needs one.
        missing : {'none', 'drop', 'raise'}, optional
            What statsmodels does with rows holding NaN (None is 'none').
        check_rank : bool, default True
            Check the rank of `exog` (and adjust the degrees of freedom if it is short).

        Returns
        -------
        BinaryResults
            The fitted statsmodels results.
        """
        import statsmodels.api as sm

        model = sm.Logit(endog, exog, missing=missing, check_rank=check_rank)
        return self._record_model("logit", model.fit(disp=0))

    def logitr(self, formula: str, data: Any, subset: Any = None, drop_cols: Any = None,
               *args: Any, **kwargs: Any) -> Any:
        """Fit a logit model from an R-style formula and check its degrees of freedom.

        Parameters
        ----------
        formula : str
            The model, e.g. ``'smoker ~ age + C(region)'``; the dependent variable is 0 or 1.
        data : DataFrame
            The data the formula's names refer to.
        subset : array-like, optional
            The rows of `data` to use.
        drop_cols : list of str, optional
            Columns to drop from the design matrix.
        *args
            Further positional arguments of statsmodels.formula.api.logit.
        **kwargs
            Further keyword arguments of statsmodels.formula.api.logit.

        Returns
        -------
        BinaryResults
            The fitted statsmodels results.
        """
        import statsmodels.formula.api as smf

        model = smf.logit(formula, data, subset, drop_cols, *args, **kwargs)
        return self._record_model("logitr", model.fit(disp=0))

    def probit(self, endog: Any, exog: Any, missing: str | None = None,
               check_rank: bool = True) -> Any:
        """Fit a probit model (statsmodels Probit) and check its degrees of freedom.

        A model with fewer residual degrees of freedom than ``safe_dof_threshold`` fails.

        Parameters
        ----------
        endog : array-like
            The binary dependent variable (0 or 1).
        exog : array-like
            The explanatory variables; add a constant yourself if the model needs one.
        missing : {'none', 'drop', 'raise'}, optional
            What statsmodels does with rows holding NaN (None is 'none').
        check_rank : bool, default True
            Check the rank of `exog` (and adjust the degrees of freedom if it is short).

        Returns
        -------
        BinaryResults
            The fitted statsmodels results.
        """
        import statsmodels.api as sm

        model = sm.Probit(endog, exog, missing=missing, check_rank=check_rank)
        return self._record_model("probit", model.fit(disp=0))

    def probitr(self, formula: str, data: Any, subset: Any = None, drop_cols: Any = None,
                *args: Any, **kwargs: Any) -> Any:
        """Fit a probit model from an R-style formula and check its degrees of freedom.

        Parameters
        ----------
        formula : str
            The model, e.g. ``'smoker ~ age + C(region)'``; the dependent variable is 0 or 1.
        data : DataFrame
            The data the formula's names refer to.
        subset : array-like, optional
            The rows of `data` to use.
        drop_cols : list of str, optional
            Columns to drop from the design matrix.
        *args
            Further positional arguments of statsmodels.formula.api.probit.
        **kwargs
            Further keyword arguments of statsmodels.formula.api.probit.

        Returns
        -------
        BinaryResults
            The fitted statsmodels results.
        """
        import statsmodels.formula.api as smf

        model = smf.probit(formula, data, subset, drop_cols, *args, **kwargs)
        return self._record_model("probitr", model.fit(disp=0))

    # ----- session management ---------------------------------------------------------------
    def custom_output(self, filename: str, comment: str = "") -> bool:
        """Add a file made without the session, checked as the airlock checks a submitted file.

        Count tables (CSV/TSV) are checked by rule and can pass or fail; any other file goes to
        review for a checker to read.

        Parameters
        ----------
        filename : str
            The path of the file.
        comment : str, default ''
            A comment for the checkers (none when empty).

        Returns
        -------
        bool
            False when the extension is blocked (nothing added); True otherwise, also when the
            file does not exist (a warning is logged and nothing is added, as ACRO does).
        """
        from lnds_spe.sdc.filecheck import check_file

        if self.results.is_blocked(filename):
            return False
        if not Path(filename).is_file():
            logger.warning("Unable to add %s because the file does not exist.", filename)
            return True
        verdict = check_file(filename, self.config)
        self.results.add(
            status=verdict["status"], output_type="custom", properties={"method": "custom"},
            command=_caller_command(), summary="; ".join(verdict["reasons"]) or verdict["status"],
            outputs=[os.path.normpath(filename)], comments=[comment] if comment else [],
        )
        return True

    def add_exception(self, output: str, reason: str) -> None:
        """Ask the checkers to release a failing or review output, giving the reason.

        Parameters
        ----------
        output : str
            The output's name, e.g. 'output_0'.
        reason : str
            Why the output should be released although it did not pass.
        """
        self.results.add_exception(output, reason)

    def add_comments(self, output: str, comment: str) -> None:
        """Attach a comment for the checkers to an output.

        Parameters
        ----------
        output : str
            The output's name, e.g. 'output_0'.
        comment : str
            The comment; an output may have several.
        """
        self.results.add_comments(output, comment)

    def remove_output(self, key: str) -> None:
        """Drop an output from the session, so it is not finalised.

        Parameters
        ----------
        key : str
            The output's name, e.g. 'output_0'.
        """
        self.results.remove(key)
        self._count_tables.pop(key, None)

    def rename_output(self, old: str, new: str) -> None:
        """Give an output a new name.

        Parameters
        ----------
        old : str
            The output's current name, e.g. 'output_0'.
        new : str
            The new name; it must not be taken.
        """
        self.results.rename(old, new)
        if old in self._count_tables:
            self._count_tables[new] = self._count_tables.pop(old)

    def print_outputs(self) -> str:
        """Print every output with its verdict and return the text.

        Returns
        -------
        str
            What was printed.
        """
        return self.results.print()

    def show_fair_summaries(self) -> str:
        """Each output's FAIR description: its analyses and dependent and independent variables.

        Returns
        -------
        str
            One block per output, headed by its name.
        """
        text = ""
        for uid, record in self.results.results.items():
            text += uid + "\n"
            for key, value in record.fair.items():
                if isinstance(value, dict):
                    text += "".join(f"{k} : {v}\n" for k, v in value.items())
                else:
                    text += f"{key}:{value}\n"
        return text + "\n"

    def session_summary(self) -> dict[str, Any]:
        """Counts of the session's outputs by verdict and by type, for the researcher.

        Not written to the release folder.

        Returns
        -------
        dict
            ``total_outputs``, ``status_counts`` and ``type_counts``.
        """
        return session_summary(self.results)

    def enable_suppression(self) -> None:
        """Suppress unsafe cells of the tables made from now on."""
        self.suppress = True

    def disable_suppression(self) -> None:
        """Stop suppressing unsafe cells in the tables made from now on."""
        self.suppress = False

    def enable_rounding(self, base: int | None = None) -> None:
        """Round the cells of the tables made from now on; this replaces suppression.

        Totals of counts and sums are re-added from the rounded cells.

        Parameters
        ----------
        base : int, optional
            Round to the nearest multiple of this; defaults to the current ``round_base`` (the
            config's ``safe_round_base`` unless changed).
        """
        if base is not None:
            self.round_base = base
        self.mitigation = "round"

    def disable_rounding(self) -> None:
        """Stop rounding; mitigation falls back to none."""
        if self.mitigation == "round":
            self.mitigation = "none"

    def finalise(self, path: str = "outputs", ext: str = "json",
                 interactive: bool = False) -> Records | None:
        """Write the folder for the airlock: outputs, results.json, config.json and checksums.

        In federated mode the folder holds evidence.json and the count tables instead. An existing
        folder is left alone and None returned, as ACRO does.

        Parameters
        ----------
        path : str, default 'outputs'
            The folder to create; it must not exist yet.
        ext : {'json', 'xlsx'}, default 'json'
            The results format: 'xlsx' writes results.xlsx beside results.json.
        interactive : bool, default False
            First ask, for each failing or review output without an exception, why it should be
            released.

        Returns
        -------
        Records or None
            The session's records, or None when the folder already exists.
        """
        if not release_folder_free(path, None if self.federated else ext):
            return None
        if self.federated:
            write_evidence(path, self._federated_evidence, self.config)
            return self.results
        if interactive:
            self.results.validate_outputs()
        self.results.finalise(path, ext, self.config)
        shutil.rmtree(ARTIFACTS_DIR, ignore_errors=True)
        return self.results


ARTIFACTS_DIR = "acro_artifacts"


def _artefact_name(filename: str) -> Path:
    """acro_artifacts/<filename>, or with _1, _2, ... before the suffix if taken."""
    path = Path(ARTIFACTS_DIR) / Path(filename).name
    path.parent.mkdir(exist_ok=True)
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}_{number}{path.suffix}")
    return candidate


def _save_plot(draw: Any, path: Path) -> None:
    """Draw on a fresh matplotlib figure (no display) and save it to path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    draw(axes)
    figure.savefig(path)
    plt.close(figure)
