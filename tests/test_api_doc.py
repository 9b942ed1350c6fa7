"""docs/api.md runs as written, and the public entry points it documents do what it says:
``measure_denoiser_locality``, ``kmax_of_denoiser`` (with a detector callable) and
``detect_objects`` on a callable."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "api.md"

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def python_blocks(text: str) -> list[str]:
    """The bodies of the fenced ```python blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_python_blocks_finds_fenced_code_only():
    text = "intro\n```python\na = 1\n```\n```\nnot python\n```\n```python\nb = a + 1\n```\n"
    assert python_blocks(text) == ["a = 1\n", "b = a + 1\n"]


def test_the_api_doc_example_runs(monkeypatch, capsys):
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 5
    source = "\n".join(blocks)
    # the example calls the three measurements and wraps a module of its own, not a project model
    for call in ("measure_denoiser_locality(", "kmax_of_denoiser(", "ExactDenoiser(",
                 "ExactFamilyDenoiser.from_family(", "torch.nn.Module"):
        assert call in source, call
    assert "EDMDenoiser" not in source and "PatchLocalDenoiser" not in source
    monkeypatch.chdir(ROOT)
    namespace = {"__name__": "api_doc"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/api.md block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "Kmax" in out and "leakage" in out
    assert set(namespace["result"]["per_k"]) == {0, 1, 2, 3}


# -- the entry points ----------------------------------------------------------------------------

def test_readme_links_the_api_doc():
    assert "docs/api.md" in (ROOT / "README.md").read_text()


class Dots:
    """Ignores x: white 1-pixel dots on black at the requested locations (or none), so the sampler's
    last step returns exactly this image and a pixel detector finds every requested object."""

    def __init__(self, draw: bool = True):
        self.draw = draw

    def __call__(self, x, sigma, cond, mask):
        b, _, h, w = x.shape
        out = torch.full_like(x, -1.0)
        if self.draw:
            col = ((cond[..., 0] + 1) / 2 * w).floor().long().clamp(0, w - 1)
            row = ((cond[..., 1] + 1) / 2 * h).floor().long().clamp(0, h - 1)
            for i in range(b):
                out[i, :, row[i][mask[i]], col[i][mask[i]]] = 1.0
        return out


def white_pixels(images):
    found = []
    for image in images:
        rows, cols = np.nonzero(image.min(-1) > 128)
        h, w = image.shape[:2]
        found.append(np.stack([2 * (cols + 0.5) / w - 1, 2 * (rows + 0.5) / h - 1], axis=-1))
    return found


def dot_data():
    from empirical.clevr.synthetic import BlobDataset
    return BlobDataset(size=48, resolution=32, min_objects=0, max_objects=3, seed=1)


def test_kmax_of_denoiser_with_a_detector_callable():
    from empirical.evaluation.kmax import kmax_of_denoiser

    data = dot_data()
    drawn = kmax_of_denoiser(Dots(), data, white_pixels, max_k=3, num_sets=3, samples_per_set=2,
                             sampler_steps=3, keep_samples=True)
    assert drawn["per_k"] == {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0} and drawn["kmax"] == 3
    assert drawn["counts"][2]["n"] == 6 and drawn["resolution"] == 32
    assert drawn["samples"][3].shape == (6, 32, 32, 3) and drawn["samples"][3].dtype == np.uint8
    # the requested locations are the dataset's sets, each repeated samples_per_set times
    from empirical.evaluation.kmax import location_sets_by_k
    sets = location_sets_by_k(data, [2], 3)[2]
    np.testing.assert_allclose(drawn["requested"][2][::2], np.stack([s.numpy() for s in sets]))
    blank = kmax_of_denoiser(Dots(draw=False), data, white_pixels, max_k=3, num_sets=3, sampler_steps=3)
    assert blank["per_k"] == {0: 1.0, 1: 0.0, 2: 0.0, 3: 0.0} and blank["kmax"] == 0


def test_kmax_of_denoiser_names_a_missing_k():
    from empirical.evaluation.kmax import kmax_of_denoiser

    with pytest.raises(ValueError, match=r"K = \[4\]"):
        kmax_of_denoiser(Dots(), dot_data(), white_pixels, max_k=4, num_sets=1, sampler_steps=2)


def test_detect_objects_takes_a_callable_and_checks_its_length():
    from empirical.detection.detector import detect_objects

    images = np.zeros((3, 8, 8, 3), np.uint8)
    images[1, 2, 5] = 255
    found = detect_objects(white_pixels, images)
    assert [len(f) for f in found] == [0, 1, 0] and found[1].dtype == np.float64
    with pytest.raises(ValueError, match="2 detection lists for 3 images"):
        detect_objects(lambda imgs: white_pixels(imgs)[:2], images)


def test_measure_denoiser_locality_equals_measure_locality_on_the_collated_items():
    from empirical.diagnostics.locality import measure_denoiser_locality, measure_locality

    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 3, 3, padding=1)

    def denoiser(x, sigma, cond, mask):   # a plain callable: pixel local, ignores the conditioners
        return net(x)

    data = [(torch.randn(3, 8, 8), torch.tensor([[0.1, 0.2]])),
            (torch.randn(3, 8, 8), torch.tensor([[0.5, -0.5], [-0.5, 0.5]])),
            (torch.randn(3, 8, 8), torch.zeros(0, 2)),
            (torch.randn(3, 8, 8), torch.tensor([[0.0, 0.0], [0.3, 0.3], [-0.7, 0.1]]))]
    got = measure_denoiser_locality(denoiser, data, num_images=2, min_objects=2, sigmas=(0.5,), seed=3)
    assert got["images"] == [1, 3]
    clean = torch.stack([data[1][0], data[3][0]])
    cond = torch.zeros(2, 3, 2)
    cond[0, :2], cond[1] = data[1][1], data[3][1]
    mask = torch.tensor([[True, True, False], [True, True, True]])
    want = measure_locality(denoiser, clean, cond, mask, (0.5,), seed=3)
    assert got["summary"] == want["summary"] and got["pixels"] == want["pixels"]
    assert got["summary"]["pixel_effective_radius"] <= 2 ** 0.5       # one 3x3 convolution
    assert got["per_sigma"][0]["conditional"]["zero_change_removals"] == 5
    with pytest.raises(ValueError, match=">= 4 conditioners"):
        measure_denoiser_locality(denoiser, data, min_objects=4, sigmas=(0.5,))
