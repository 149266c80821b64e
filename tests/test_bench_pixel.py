"""`pam-bench bench --what pixel`: every pass is set against the decode floor of the same videos."""
from __future__ import annotations

from click.testing import CliRunner

from .conftest import require_weights


def _rows(out: str) -> dict[str, list[float]]:
    rows = {}
    for line in out.splitlines():
        cells = line.rsplit(maxsplit=5)
        if len(cells) == 6 and cells[0].startswith(("decode floor:", "SSIM+PSNR")) and "x wall" not in line:
            rows[cells[0].strip()] = [float(c) for c in cells[1:]]
    return rows


def test_pixel_bench_sets_each_pass_against_its_own_floor():
    require_weights("lpips-alexnet")
    from pam_bench.cli import cli

    r = CliRunner().invoke(cli, ["bench", "--pairs", "1", "--frames", "9", "--height", "48", "--width", "64",
                                 "--workers", "2", "--skip-naive", "--no-progress"])
    assert r.exit_code == 0, (r.output, r.exception)
    rows = _rows(r.output)
    floor_n = rows["decode floor: 2N videos, one after the other, 1 thread (N)"]
    floor_8n = rows["decode floor: 16N videos, one after the other, 1 thread (8N)"]
    for label, floor in [("SSIM+PSNR pass, 2 workers (N)", floor_n), ("SSIM+PSNR pass, 2 workers (8N)", floor_8n),
                         ("SSIM+PSNR+LPIPS pass, 2 workers, LPIPS on cpu (N)", floor_n)]:
        wall, ratio = rows[label][0], rows[label][3]
        # all printed to 2 decimals: ratio x floor = wall up to those roundings
        assert abs(ratio * floor[0] - wall) <= 0.006 * (ratio + 1), label
    assert rows["SSIM+PSNR pass, 2 workers (8N)"][4] > 0
    assert "SSIM and PSNR equal in both passes: True" in r.output
    assert "at 8N" in r.output and "where one pair's time goes" in r.output
