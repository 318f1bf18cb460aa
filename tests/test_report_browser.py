"""The HTML report as a reader sees it: opened in a real browser (Debian's headless Chromium),
every picture decodes, and none is blank. A copy of the page gets a script that, once the page
has loaded, draws each image on a canvas and writes what it found into the page, which the
browser then prints (``--dump-dom``)."""

import html
import json
import re
import subprocess
from pathlib import Path

import pytest

from purelearn.config import load_config
from purelearn.execute import tune
from purelearn.report import write_report

CHROMIUM = Path("/usr/bin/chromium")

# For each <img>: whether it decoded (naturalWidth > 0), how many colours it has and which
# fraction of its pixels differ from its corner (the background): one colour is a blank image.
PROBE = """<script>
window.addEventListener("load", () => {
  const states = [];
  for (const img of document.images) {
    const state = {alt: img.alt, width: img.naturalWidth, height: img.naturalHeight, colours: 0, ink: 0};
    if (img.naturalWidth > 0) {
      const canvas = document.createElement("canvas");
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const context = canvas.getContext("2d");
      context.drawImage(img, 0, 0);
      const d = context.getImageData(0, 0, canvas.width, canvas.height).data;
      const seen = new Set();
      const corner = (d[0] << 16) | (d[1] << 8) | d[2];
      let ink = 0;
      for (let i = 0; i < d.length; i += 4) {
        const rgb = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
        seen.add(rgb);
        if (rgb !== corner) ink++;
      }
      state.colours = seen.size;
      state.ink = ink / (d.length / 4);
    }
    states.push(state);
  }
  const out = document.createElement("pre");
  out.id = "image-states";
  out.textContent = JSON.stringify(states);
  document.body.appendChild(out);
});
</script>"""


def _image_states(page: Path, tmp_path: Path) -> list[dict]:
    probed = page.with_name("probed.html")
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    run = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000", "--dump-dom",
         probed.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="image-states">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the browser printed no image states (exit {run.returncode}): {run.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """A digits MLP study (enough trials for the knobs' importance) and an RBM's (its samples)."""
    root = tmp_path_factory.mktemp("studies")
    mlp = tune(load_config(None, ["model.hidden=[24]", "train.max_epochs=2"]),
               {"train.lr": "loguniform(0.01, 0.5)", "train.momentum": "uniform(0, 0.9)"}, trials=6,
               store=root / "mlp.db", study="mlp", workers=1)
    rbm = tune(load_config(None, ["data.preprocess=['scale']", "train.max_epochs=2", 'model.family="rbm"',
                                  "model.hidden=20"]),
               {"train.lr": "loguniform(0.05, 0.2)"}, trials=2, store=root / "rbm.db", study="rbm", workers=1)
    return {"mlp": mlp, "rbm": rbm}


@pytest.mark.parametrize("name, pictures", [
    ("mlp", {"efficiency", "marginals", "curves", "importance", "filters", "hinton", "hinton-output", "tsne"}),
    ("rbm", {"efficiency", "marginals", "curves", "filters", "hinton", "tsne", "reconstructions", "samples"}),
])
def test_every_picture_of_the_report_loads_in_a_browser_and_none_is_blank(studies, name, pictures, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run it.")
    page = write_report(studies[name], tmp_path / "report")
    states = _image_states(page, tmp_path)
    assert len(states) == page.read_text().count("<img ")
    assert pictures <= {s["alt"] for s in states}
    for s in states:
        assert s["width"] > 0 and s["height"] > 0, f"{s['alt']}: the browser could not decode it"
        assert s["colours"] > 2 and s["ink"] > 0.005, f"{s['alt']} is blank: {s}"
