"""The CLI's start-up path and its promises to a new user."""
from __future__ import annotations

import json
import subprocess
import sys

from pam_bench.registry import REGISTRY

HEAVY = ("torch", "diffusers", "transformers", "mediapipe", "cv2", "lpips", "scipy", "decord")


def test_list_imports_no_heavy_module():
    code = ("import sys; from pam_bench.cli import main\n"
            "try:\n    main(['list'])\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "HEAVY=\n" in r.stdout or r.stdout.rstrip().endswith("HEAVY="), r.stdout[-300:]
    for name in ("synthetic", "dexycb", "oracle", "pam", "fvd", "mf", "mpjpe"):
        assert name in r.stdout


def test_every_registry_entry_resolves():
    """Each name -> "module:Attr" loads and is the right kind of object (one registry, no parallel ones)."""
    from pam_bench.metrics.base import Metric
    from pam_bench.types import Dataset, Generator

    base = {"dataset": Dataset, "method": Generator, "metric": Metric}
    for e in REGISTRY.entries():
        obj = e.load()
        assert issubclass(obj, base[e.kind]), e
        if e.kind == "metric":
            assert obj.direction in ("lower", "higher") and obj.version and obj.name == e.name


def test_pam_without_checkpoint_says_what_to_supply(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pam_bench", "evaluate", "--method", "pam", "--out",
                        str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if x.startswith("pam-bench: error")]
    assert len(lines) == 1 and "--checkpoint" in lines[0]
    assert not (tmp_path / "o" / "results.json").exists()


def test_table_marks_backends(tmp_path, dexycb_clip):
    from pam_bench.commands.evaluate import format_results
    from pam_bench.run.loop import evaluate

    from ._small import Noisy, SmallReal

    ds = SmallReal(dexycb_clip, n=2)
    r1 = evaluate(Noisy(), ds, ["ssim", "psnr"], tmp_path / "a", progress=False)
    r2 = json.loads(json.dumps(r1))
    r2["metrics"]["ssim"]["backend"] = "other-backend"
    text = format_results([r1, r2])
    assert "ssim ↑ [skimage-gaussian11-s1.5]" in text and "ssim ↑ [other-backend]" in text


def _commands():
    """Every command and sub-command: (path, click command)."""
    import click

    from pam_bench.cli import cli

    out, todo = [], [(("pam-bench",), cli)]
    while todo:
        path, cmd = todo.pop()
        out.append((" ".join(path), cmd))
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            todo += [((*path, n), cmd.get_command(ctx, n)) for n in cmd.list_commands(ctx)]
    return out


def test_every_option_has_help_and_every_command_shows_examples():
    import click

    from pam_bench.cli import cli

    cmds = _commands()
    assert len(cmds) > 15
    for path, cmd in cmds:
        for p in cmd.params:
            if isinstance(p, click.Option) and p.name != "help":
                assert p.help, f"{path} {p.opts} has no help text"
        text = cmd.get_help(click.Context(cmd, info_name=path))
        tail = text.rstrip().splitlines()
        ex = [i for i, line in enumerate(tail) if line.strip() == "Examples:"]
        assert ex, f"{path} --help shows no example"
        assert any(x.strip().startswith("pam-bench") for x in tail[ex[-1]:]), f"{path}: examples are not commands"
    assert "-d" in [o for p in cli.get_command(click.Context(cli), "data").get_command(None, "verify").params
                    for o in getattr(p, "opts", [])]


def test_one_flag_vocabulary():
    """-o is a method option, -d a dataset option, -m a metric option, wherever they appear."""
    import click

    meaning = {"-o": "method", "-d": "dataset", "-m": "metric"}
    for path, cmd in _commands():
        for p in cmd.params:
            for flag, word in meaning.items():
                if isinstance(p, click.Option) and flag in p.opts:
                    assert word in p.help.lower(), f"{path} {flag}: {p.help}"


def _list_rows(args, capsys) -> dict[str, list[str]]:
    from pam_bench.cli import main

    try:
        main(["list", *args])
    except SystemExit as e:
        assert not e.code
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] in ("yes", "no"):
            rows[parts[0]] = parts
    return rows


def test_list_never_says_ready_without_the_checkpoint(tmp_path, capsys):
    rows = _list_rows(["--kind", "method"], capsys)
    for name in ("pam", "coshand", "svd-hand", "svd-multi", "folder"):
        assert rows[name][1] == "no", rows[name]
    for name in ("oracle", "static", "sim-render"):
        assert rows[name][1] == "yes"
    empty = tmp_path / "empty_ckpt"
    empty.mkdir()
    for name, extra in (("pam", []), ("coshand", []), ("svd-hand", ["-o", f"svd={empty}"]),
                        ("svd-multi", ["-o", f"svd={empty}"])):
        rows = _list_rows(["--method", name, "--checkpoint", str(empty), *extra], capsys)
        assert rows[name][1] == "no", rows[name]  # the folder is there but holds no checkpoint
    rows = _list_rows(["--dataset", "dexycb"], capsys)
    assert rows["dexycb"][1] == "no"


def test_every_flag_list_suggests_is_accepted_by_evaluate(tmp_path):
    """Each registry entry's suggested flags parse in `evaluate`, and each -o/-d key is an option its class takes."""
    import inspect
    import re

    from pam_bench.commands.evaluate import evaluate

    for e in REGISTRY.entries():
        if not e.user_files:
            assert not e.requires, e
            continue
        tokens = e.user_files.replace("[", " ").replace("]", " ").split()
        argv = [re.sub(r"^[A-Z][A-Z0-9_]*$", str(tmp_path / "x"), t) for t in tokens]
        argv = [re.sub(r"=[A-Z][A-Z0-9_]*$", f"={tmp_path / 'x'}", t) for t in argv]
        base = ["--method", e.name] if e.kind == "method" else ["--method", "static", "--dataset", e.name]
        evaluate.make_context("evaluate", base + argv)  # raises click.UsageError on an unknown flag
        params = inspect.signature(e.load().__init__).parameters
        for flag, kv in zip(tokens, tokens[1:]):
            if flag in ("-o", "-d"):
                key = kv.split("=", 1)[0]
                assert key in params, f"{e.name}: {flag} {key} is not an option of {e.target}"
        for req in e.requires:
            flag = f"-{req[0]} {req[2:]}=" if req[1:2] == ":" else f"--{req}"
            assert flag in e.user_files, f"{e.name} requires {req} but its flags do not say how: {e.user_files}"


def test_data_show_synthetic_needs_no_root(tmp_path):
    from click.testing import CliRunner

    from pam_bench.cli import cli

    out = tmp_path / "show.png"
    res = CliRunner().invoke(cli, ["data", "show", "--dataset", "synthetic", "-d", "n_clips=1", "-d", "frames=2",
                                   "-d", "height=48", "-d", "width=64", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 0


def test_table_marks_small_n_fvd():
    from pam_bench.commands.evaluate import format_results

    r = {"method": {"name": "m"}, "dataset": {"name": "d", "split": "s"}, "n_evaluated": 2, "n_expected": 2,
         "metrics": {"fvd": {"value": 123.4, "direction": "lower", "backend": "i3d-k400-port", "version": "1",
                             "n": 2, "ci95": None}}}
    text = format_results([r])
    assert "123.4†" in text and "fewer clips than the paper's 1,600" in text
    r["metrics"]["fvd"]["n"] = 1600
    assert "†" not in format_results([r])
