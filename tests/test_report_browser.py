"""The Snakemake report of a run, opened in headless Chromium as a reader would open it: the page
loads without console errors, its menu holds every category and figure, and a screenshot of the
front page is kept (tests/artefacts/report_front_page.png)."""

import re
import shutil
import subprocess
from importlib import metadata

import numpy as np
import pytest

from conftest import REPO, run_snakemake

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
ARTEFACTS = REPO / "tests/artefacts"
FIGURES = ("maps.png", "fdf_spectra.png", "moments.png", "peak_rm.png", "rmsf.png", "channel_qa.png",
           "catalogue.html", "provenance.html")


def chromium(*args, timeout=120):
    command = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--hide-scrollbars", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def report_page(tiny_run):
    report = tiny_run / "report_browser.html"
    run_snakemake(tiny_run, "--configfile", str(REPO / "tests/configs/tiny.yaml"), "--report", str(report))
    return report


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (tools/install-system-deps.sh installs the "
                                              "Debian package chromium where root and apt are available)")
def test_report_opens_in_chromium_without_errors_and_shows_every_figure(report_page):
    dom = chromium("--virtual-time-budget=15000", "--dump-dom", report_page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    # console messages come as [pid:...:LEVEL:CONSOLE:line]; the bundled Tailwind's INFO notice is no error
    errors = [line for line in dom.stderr.splitlines()
              if ("CONSOLE" in line and ":INFO:CONSOLE" not in line) or "Uncaught" in line]
    assert not errors, "\n".join(errors)
    # what the page's script rendered into #app (not the data it carries): the menu and the front page
    rendered = dom.stdout[dom.stdout.index('<div id="app">'):]
    rendered = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", rendered[:rendered.find("<script")]))
    assert 'id="loading-screen" style="display: none;"' in dom.stdout
    for category in ("Maps", "Faraday depth", "Catalogue", "Quality", "Provenance"):
        assert f" {category} " in rendered, category
    assert "This run. Input: the simulated demo observation (16 channels)." in rendered
    # the provenance on the front page: the workflow's commit as git says, the versions installed
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert f" workflow commit {commit.strip()} " in rendered
    assert f" numpy {metadata.version('numpy')} " in rendered and f" ducc0 {metadata.version('ducc0')} " in rendered
    page = report_page.read_text(errors="replace")
    for name in FIGURES:
        assert name in page, name
    ARTEFACTS.mkdir(exist_ok=True)
    screenshot = ARTEFACTS / "report_front_page.png"
    shot = chromium("--window-size=1400,1000", "--virtual-time-budget=15000", f"--screenshot={screenshot}",
                    report_page.as_uri())
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    from matplotlib.image import imread

    pixels = imread(screenshot)
    assert pixels.shape[:2] == (1000, 1400) and float(np.std(pixels[..., :3])) > 0.02  # not a blank page
