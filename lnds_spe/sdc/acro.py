"""Researcher-facing API, method for method as ACRO 1.0.x: each call returns what pandas or
statsmodels would, and records the output with its verdict for the airlock."""

from __future__ import annotations

import linecache
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lnds_spe.errors import SPEError
from lnds_spe.sdc import rules
from lnds_spe.sdc.config import SDCConfig, load_config
from lnds_spe.sdc.ledger import CountTable, count_table_from_frame, differencing_findings, read_ledger
from lnds_spe.sdc.records import Record, Records, outcome_frame, session_summary
from lnds_spe.sdc.tables import CheckedTable, checked_crosstab


def _caller_command() -> str:
    """Source line of the researcher's call, recorded as ACRO does (cheap: no inspect.stack)."""
    package_dir = str(Path(__file__).parent)
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(package_dir):
        frame = frame.f_back
    if frame is None:
        return ""
    return linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()


class ACRO:
    """Checks each output as it is made; `finalise` writes the folder checkers review."""

    def __init__(
        self,
        config: str | dict[str, Any] | os.PathLike = "default",
        suppress: bool = False,
        ledger: str | os.PathLike | None = None,
        project: str | None = None,
    ) -> None:
        """config: 'default'/'sdap', 'opensafely', a YAML path or a mapping of ACRO keys."""
        self.config: SDCConfig = load_config("sdap" if config == "default" else config)
        self.suppress = suppress
        self.results = Records()
        self._count_tables: dict[str, tuple[CountTable, dict[tuple[str, ...], tuple[int, int]]]] = {}
        self._released: list[CountTable] = read_ledger(ledger, project) if ledger else []

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
    ) -> pd.DataFrame:
        """pandas.crosstab, checked (weights: survey weights, never used for thresholds)."""
        checked = checked_crosstab(
            index, columns, values, rownames, colnames, aggfunc, margins, margins_name, dropna,
            normalize, weights, self.config, self.suppress,
        )
        self._record_table("crosstab", checked, _caller_command(), aggfunc, values is None)
        return checked.table

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
    ) -> pd.DataFrame:
        """pandas.pivot_table, checked cell by cell like crosstab."""
        def pick(spec: Any) -> list[pd.Series]:
            names = [] if spec is None else (spec if isinstance(spec, list) else [spec])
            return [data[n] for n in names]

        if values is None or isinstance(values, list) or isinstance(aggfunc, list | dict):
            raise SPEError("pivot_table: pass one values column and one aggfunc per call.")
        checked = checked_crosstab(
            pick(index), pick(columns), data[values], None, None,
            aggfunc if aggfunc != "count" else "count", margins, margins_name, dropna,
            False, None, self.config, self.suppress,
        )
        table = pd.pivot_table(
            data, values=values, index=index, columns=columns, aggfunc=aggfunc,
            fill_value=fill_value, margins=margins, dropna=dropna, margins_name=margins_name,
            observed=True,
        )
        if checked.hidden.any() and checked.hidden.shape == table.shape:
            table = table.mask(checked.hidden)
        checked.table = table
        self._record_table("pivot_table", checked, _caller_command(), aggfunc, aggfunc == "count")
        return table

    def _record_table(
        self, method: str, checked: CheckedTable, command: str, aggfunc: Any, frequency: bool
    ) -> Record:
        """Store a table output and run the differencing checks on frequency tables."""
        flags = dict(checked.flags)
        shape = checked.table.shape
        flags = {k: v for k, v in flags.items() if v.shape == shape}
        record = self.results.add(
            status=checked.verdict,
            output_type="table",
            properties={"method": method, "aggfunc": None if aggfunc is None else str(aggfunc),
                        "suppressed": bool(checked.hidden.any()), "notes": checked.notes},
            command=command,
            summary=checked.summary,
            outputs=[checked.table],
            flags=flags,
            outcome=outcome_frame(checked.table, flags),
        )
        if frequency:
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
    ) -> str:
        """Histogram of one column saved to `filename` (numbered if taken); returns its name."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        values = pd.to_numeric(data[column], errors="coerce").dropna().to_numpy()
        counts, edges = np.histogram(values, bins=bins, range=kwargs.get("range"))
        flags = {
            rules.THRESHOLD: rules.threshold_mask(
                counts, self.config.safe_threshold, self.config.zeros_are_disclosive
            )[None, :]
        }
        verdict = rules.verdict_for(flags)
        summary = f"{verdict}; bins below threshold: {int(flags[rules.THRESHOLD].sum())}"
        if kwargs.get("range") is None:
            summary += "; review: the outermost bin edges are the data's minimum and maximum"
        path = _free_name(filename)
        figure, axes = plt.subplots()
        axes.hist(values, bins=edges)
        axes.set_xlabel(column)
        figure.savefig(path)
        plt.close(figure)
        table = pd.DataFrame([counts], columns=[f"[{a:g}, {b:g}]" for a, b in zip(edges[:-1],
                                                                                edges[1:], strict=True)])
        self.results.add(
            status=verdict, output_type="histogram",
            properties={"method": "histogram", "bin_edges": [float(e) for e in edges],
                        "bin_counts": [int(c) for c in counts]},
            command=_caller_command(), summary=summary, outputs=[str(path)], flags=flags,
            outcome=outcome_frame(table, flags),
        )
        return str(path)

    def surv_func(
        self, time: Any, status: Any, output: str = "table", entry: Any = None,
        title: str = "Survival function", xlabel: str = "t", ylabel: str = "S(t)",
        filename: str = "kaplan-meier.png",
    ) -> Any:
        """Kaplan-Meier estimate (statsmodels SurvfuncRight); rows with few at risk fail."""
        import statsmodels.api as sm

        fitted = sm.SurvfuncRight(time, status, entry=entry, title=title)
        table = fitted.summary()
        at_risk = table["num at risk"].to_numpy()
        mask = np.repeat((at_risk < self.config.survival_safe_threshold)[:, None],
                         table.shape[1], axis=1)
        flags = {rules.THRESHOLD: mask}
        verdict = rules.verdict_for(flags)
        few = int(mask[:, 0].sum())
        summary = f"{verdict}; rows with fewer than {self.config.survival_safe_threshold} at risk: {few}"
        self.results.add(
            status=verdict, output_type="table", properties={"method": "surv_func"},
            command=_caller_command(), summary=summary, outputs=[table], flags=flags,
            outcome=outcome_frame(table, flags),
        )
        if output == "plot":
            import matplotlib

            matplotlib.use("Agg")
            figure = fitted.plot()
            figure.axes[0].set_title(title)
            figure.axes[0].set_xlabel(xlabel)
            figure.axes[0].set_ylabel(ylabel)
            path = _free_name(filename)
            figure.savefig(path)
            return str(path)
        return table

    # ----- regressions ----------------------------------------------------------------------
    def _record_model(self, method: str, fitted: Any) -> Any:
        """Check residual degrees of freedom and store the summary tables."""
        dof = float(fitted.df_resid)
        fails = rules.dof_fails(dof, self.config.safe_dof_threshold)
        verdict = "fail" if fails else "pass"
        comparison = "<" if fails else ">="
        summary = f"{verdict}; dof={dof:g} {comparison} {self.config.safe_dof_threshold}"
        tables = [pd.DataFrame(t.data) for t in fitted.summary().tables]
        self.results.add(
            status=verdict, output_type="regression", properties={"method": method, "dof": dof},
            command=_caller_command(), summary=summary, outputs=tables,
        )
        return fitted

    def ols(self, endog: Any, exog: Any = None, missing: str = "none", hasconst: Any = None,
            **kwargs: Any) -> Any:
        """statsmodels OLS, fitted and checked."""
        import statsmodels.api as sm

        return self._record_model(
            "ols", sm.OLS(endog, exog, missing=missing, hasconst=hasconst, **kwargs).fit())

    def olsr(self, formula: str, data: Any, subset: Any = None, drop_cols: Any = None,
             *args: Any, **kwargs: Any) -> Any:
        """statsmodels formula OLS, fitted and checked."""
        import statsmodels.formula.api as smf

        return self._record_model(
            "olsr", smf.ols(formula, data, subset, drop_cols, *args, **kwargs).fit())

    def logit(self, endog: Any, exog: Any, missing: str | None = None,
              check_rank: bool = True) -> Any:
        """statsmodels Logit, fitted and checked."""
        import statsmodels.api as sm

        model = sm.Logit(endog, exog, missing=missing, check_rank=check_rank)
        return self._record_model("logit", model.fit(disp=0))

    def logitr(self, formula: str, data: Any, subset: Any = None, drop_cols: Any = None,
               *args: Any, **kwargs: Any) -> Any:
        """statsmodels formula Logit, fitted and checked."""
        import statsmodels.formula.api as smf

        model = smf.logit(formula, data, subset, drop_cols, *args, **kwargs)
        return self._record_model("logitr", model.fit(disp=0))

    def probit(self, endog: Any, exog: Any, missing: str | None = None,
               check_rank: bool = True) -> Any:
        """statsmodels Probit, fitted and checked."""
        import statsmodels.api as sm

        model = sm.Probit(endog, exog, missing=missing, check_rank=check_rank)
        return self._record_model("probit", model.fit(disp=0))

    def probitr(self, formula: str, data: Any, subset: Any = None, drop_cols: Any = None,
                *args: Any, **kwargs: Any) -> Any:
        """statsmodels formula Probit, fitted and checked."""
        import statsmodels.formula.api as smf

        model = smf.probit(formula, data, subset, drop_cols, *args, **kwargs)
        return self._record_model("probitr", model.fit(disp=0))

    # ----- session management ---------------------------------------------------------------
    def custom_output(self, filename: str, comment: str = "") -> bool:
        """Add a file made without the wrapper; it is checked like any submitted file."""
        from lnds_spe.sdc.filecheck import check_file

        verdict = check_file(filename)
        self.results.add(
            status=verdict["status"], output_type="custom", properties={"method": "custom"},
            command=_caller_command(), summary="; ".join(verdict["reasons"]) or verdict["status"],
            outputs=[filename], comments=[comment] if comment else [],
        )
        return verdict["status"] != "fail"

    def add_exception(self, output: str, reason: str) -> None:
        """Ask checkers to release a failing/review output, giving the reason."""
        self.results.get(output).exception = reason

    def add_comments(self, output: str, comment: str) -> None:
        """Attach a comment for the checkers."""
        self.results.get(output).comments.append(comment)

    def remove_output(self, key: str) -> None:
        """Drop an output from the session."""
        self.results.remove(key)
        self._count_tables.pop(key, None)

    def rename_output(self, old: str, new: str) -> None:
        """Rename an output."""
        self.results.rename(old, new)
        if old in self._count_tables:
            self._count_tables[new] = self._count_tables.pop(old)

    def print_outputs(self) -> str:
        """Print and return every output with its verdict."""
        text = self.results.printable()
        print(text)
        return text

    def session_summary(self) -> dict[str, Any]:
        """Counts by verdict and type (kept out of the release folder)."""
        return session_summary(self.results)

    def enable_suppression(self) -> None:
        """Suppress unsafe cells from now on."""
        self.suppress = True

    def disable_suppression(self) -> None:
        """Stop suppressing unsafe cells."""
        self.suppress = False

    def finalise(self, path: str = "outputs", ext: str = "json") -> Records:
        """Write the folder for the airlock: outputs, results.json, config.json, checksums."""
        self.results.finalise(path, ext, self.config)
        return self.results


def _free_name(filename: str) -> Path:
    """filename, or filename with _1, _2, ... before the suffix if taken."""
    path = Path(filename)
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}_{number}{path.suffix}")
    return candidate
