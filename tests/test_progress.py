"""Progress of long work: bars on the console that owns them, a log line per tenth for Prefect's UI."""

from __future__ import annotations

import io
import subprocess
import sys

from rich.console import Console

from videozero.progress import StageProgress, console_bars


def test_stage_progress_logs_each_tenth_once_and_draws_on_the_open_console():
    lines: list[str] = []
    report = StageProgress(lines.append, prefix="round 0 ")
    out = io.StringIO()
    with console_bars(Console(file=out, width=140)):
        for step in range(101):
            report("verify", step, 100, f"step {step}")
    assert lines[0] == "round 0 verify: 0/100 (step 0)" and lines[-1] == "round 0 verify: 100/100 (step 100)"
    assert len(lines) == 11  # 0, 10, ..., 100: one line per tenth, not per step
    drawn = out.getvalue()
    assert "round 0 verify" in drawn and "100/100" in drawn


def test_without_an_open_console_only_the_log_is_written(capsys):
    lines: list[str] = []
    StageProgress(lines.append)("warm-up", 3, 4, "loss 0.5")
    assert lines == ["warm-up: 3/4 (loss 0.5)"]
    assert capsys.readouterr().out == ""


def test_quiet_libraries_hides_foreign_deprecations_but_not_real_warnings_or_our_own():
    code = (
        "from videozero.quiet import quiet_libraries; quiet_libraries(); import warnings\n"
        "warnings.warn_explicit('lib-deprecated', FutureWarning, 'x.py', 1, module='transformers.utils')\n"
        "warnings.warn_explicit('lib-problem', UserWarning, 'x.py', 1, module='transformers.utils')\n"
        "warnings.warn_explicit('own-deprecated', FutureWarning, 'x.py', 1, module='videozero.stages.run')\n"
        "from tqdm.auto import tqdm; list(tqdm(range(3)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "lib-problem" in proc.stderr and "own-deprecated" in proc.stderr
    assert "lib-deprecated" not in proc.stderr and "it/s" not in proc.stderr
