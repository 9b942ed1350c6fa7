"""``localcomp t2i locality``: constructed denoisers with known answers (torch only), the sigma
mapping, the spec checks, and the CLI end to end on tiny SD and SDXL pipelines built from
configuration (random weights; these skip without the ``t2i`` extra)."""

import json
import math
import shutil
import string

import pytest
import torch

from empirical.t2i.measure import change_spread, region_mask, resolve_features
from empirical.t2i.model import denoiser_from_prediction, sigma_table, sigma_to_timestep, weights_variant
from empirical.t2i.run import run_locality
from empirical.t2i.spec import parse_spec
from localcomp.cli import main
from localcomp.errors import UserError

pytestmark = pytest.mark.usefixtures("torch_one_thread")

LEFT, RIGHT = [0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]


# -- a constructed denoiser whose answers are known --------------------------------------------------

class WiredDenoiser(torch.nn.Module):
    """``D(x) = spatial(x) + sum_w count_w(prompt) * region_w * a_w * (1 + tanh x)``, on a 16x16
    latent with 2 channels. ``spatial``: a fixed 3x3 convolution (local: Jacobian radius <= sqrt 2)
    or ``x`` plus the image mean (every pixel feels every pixel). Each word ``w`` acts on
    ``region_w`` only (``regional``) or everywhere. The hooked module ``feat`` outputs
    ``[1, 4, H, W]``: word ``w`` writes its count times ``(1 + tanh x_0)`` on ``region_w`` into channel
    ``w`` (``orthogonal``: cat -> channel 0, dog -> 2) or into the same channel for every word;
    dog's entry is ``dog_sign``."""

    words = ("photo", "cat", "dog")

    def __init__(self, local=True, regional=True, orthogonal=True, dog_sign=1.0):
        super().__init__()
        self.local, self.regional, self.orthogonal, self.dog_sign = local, regional, orthogonal, dog_sign
        self.latent_shape = (2, 16, 16)
        self.sigma_range = (0.01, 50.0)
        generator = torch.Generator().manual_seed(3)
        self.kernel = torch.randn(2, 2, 3, 3, generator=generator)
        self.amplitude = torch.randn(len(self.words), 2, 1, 1, generator=generator)
        self.feat = torch.nn.Identity()
        self.module = self
        boxes = {"photo": None, "cat": LEFT, "dog": RIGHT}
        everywhere = torch.ones(self.latent_shape[1:])
        self.regions = torch.stack([region_mask(boxes[word], *self.latent_shape[1:]).float()
                                    if regional and boxes[word] else everywhere for word in self.words])

    def encode(self, prompt: str) -> torch.Tensor:
        tokens = prompt.replace(",", " ").split()
        return torch.tensor([float(tokens.count(w)) for w in self.words])

    def __call__(self, x, sigma, cond):
        if self.local:
            spatial = torch.nn.functional.conv2d(x, self.kernel, padding=1)
        else:
            spatial = x + x.mean(dim=(-2, -1), keepdim=True) * x.shape[-1] * x.shape[-2] / 4
        gain = 1 + torch.tanh(x)
        cond_map = (cond[:, None, None, None] * self.amplitude * self.regions[:, None]).sum(0, keepdim=True) * gain
        blocks = torch.zeros(len(self.words), 4, 1, 1)
        for i in range(1, len(self.words)):
            blocks[i, 2 * (i - 1) if self.orthogonal else 0] = self.dog_sign if self.words[i] == "dog" else 1.0
        blocks[0, 0] = 0.5
        words_in_features = cond[:, None, None, None] * blocks * self.regions[:, None]
        self.feat(words_in_features.sum(0, keepdim=True) * (1 + torch.tanh(x[:, :1])))
        return spatial + cond_map


def constructed_spec(**overrides):
    spec = {"prompt_sets": [{"name": "pets", "base": "photo", "parts": [
        {"name": "cat", "text": "cat", "region": LEFT}, {"name": "dog", "text": "dog", "region": RIGHT}]}],
        "sigmas": [0.5, 4.0], "noise_samples": 2, "positions": [[0.3, 0.5], [0.7, 0.2]],
        "features": ["feat"], "radii": [1, 2, 4, 8], "sample_steps": 0}
    spec.update(overrides)
    return parse_spec(spec)


def constructed_report(**kwargs):
    return run_locality(WiredDenoiser(**kwargs), constructed_spec())


def test_regional_conditioning_is_found_inside_its_region_and_global_is_not():
    local = constructed_report(regional=True)["prompt_sets"][0]["per_sigma"]
    wide = constructed_report(regional=False)["prompt_sets"][0]["per_sigma"]
    for rec_local, rec_wide in zip(local, wide):
        for part in ("cat", "dog"):
            here, there = rec_local["conditional"]["parts"][part], rec_wide["conditional"]["parts"][part]
            assert here["region_share"] > 0.999 and here["region_area"] == 0.5
            assert abs(there["region_share"] - 0.5) < 0.1  # an even change: the region's area
            assert here["spread_ratio"] < there["spread_ratio"]
        # the change of removing cat and of removing dog touch disjoint latent pixels
        assert rec_local["conditional"]["mean_overlap"] < 1e-6 < 0.5 < rec_wide["conditional"]["mean_overlap"]


def test_block_orthogonal_features_have_zero_mean_shift_cosine_and_shared_ones_one():
    orth = constructed_report(orthogonal=True, regional=False)["prompt_sets"][0]["per_sigma"]
    shared = constructed_report(orthogonal=False, regional=False, dog_sign=-1.0)["prompt_sets"][0]["per_sigma"]
    # the same channel, but each word on its own region: disjoint supports, orthogonal again (Lemma 8.1)
    masked = constructed_report(orthogonal=False, regional=True)["prompt_sets"][0]["per_sigma"]
    for a, b, c in zip(orth, shared, masked):
        assert a["features"]["feat"]["mean_abs_cosine"] < 1e-6
        assert a["features"]["feat"]["mean_overlap"] < 1e-6
        assert b["features"]["feat"]["mean_abs_cosine"] > 0.999
        assert b["features"]["feat"]["mean_shift_cosine"][0][1] < -0.999  # opposite shifts: cos -1
        assert b["features"]["feat"]["mean_overlap"] > 0.999
        assert c["features"]["feat"]["mean_abs_cosine"] < 1e-6
        for part in ("cat", "dog"):
            assert c["features"]["feat"]["modules"]["feat"]["parts"][part]["region_share"] > 0.999
            assert abs(b["features"]["feat"]["modules"]["feat"]["parts"][part]["region_share"] - 0.5) < 0.1


def test_local_convolution_has_a_small_effective_radius_and_a_global_mix_a_large_one():
    local = constructed_report(local=True)["prompt_sets"][0]["per_sigma"]
    mixed = constructed_report(local=False)["prompt_sets"][0]["per_sigma"]
    for a, b in zip(local, mixed):
        assert a["spatial"]["effective_radius"] <= math.sqrt(2) + 1e-9
        assert a["spatial"]["within_r2"] == pytest.approx(1.0)
        assert b["spatial"]["effective_radius"] > 6 and b["spatial"]["within_r2"] < 0.2
        within = a["spatial"]["curve"]["within"]
        assert within == sorted(within)


def test_the_cli_writes_the_known_answer_of_a_constructed_denoiser(tmp_path, monkeypatch):
    """The command's whole write path (JSON, figures, provenance) on the wired denoiser, loaded in
    place of a pipeline folder: the regional answer arrives in locality.json."""
    import empirical.t2i.model as model

    monkeypatch.setattr(model, "check_model_folder", lambda folder: "StableDiffusionPipeline")
    monkeypatch.setattr(model, "load_denoiser", lambda *args, **kwargs: WiredDenoiser())
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"prompt_sets": [{"name": "pets", "base": "photo", "parts": [
        {"name": "cat", "text": "cat", "region": LEFT}, {"name": "dog", "text": "dog", "region": RIGHT}]}],
        "sigmas": [1.0], "features": ["feat"], "sample_steps": 0, "positions": 2}))
    out = tmp_path / "out"
    assert main(["t2i", "locality", "--model", str(tmp_path), "--prompts", str(spec), "--out", str(out)]) == 0
    report = json.loads((out / "locality.json").read_text())
    rec = report["prompt_sets"][0]["per_sigma"][0]
    assert rec["conditional"]["parts"]["cat"]["region_share"] > 0.999
    assert rec["features"]["feat"]["mean_abs_cosine"] < 1e-6
    assert report["summary"][0]["feat_mean_abs_cosine"] == rec["features"]["feat"]["mean_abs_cosine"]
    assert (out / "cosines.png").is_file() and (out / "energy_vs_r.png").is_file() and (out / "run.json").is_file()


def test_report_is_reproducible_and_seeds_matter():
    spec = constructed_spec(sample_steps=2, positions=2, seeds=[1])
    first = run_locality(WiredDenoiser(), spec)
    again = run_locality(WiredDenoiser(), spec)
    other = run_locality(WiredDenoiser(), constructed_spec(sample_steps=2, positions=2, seeds=[2]))
    assert first == again
    assert first["prompt_sets"][0]["per_sigma"][0]["conditional"] != other["prompt_sets"][0]["per_sigma"][0]["conditional"]


def test_change_spread_of_a_point_is_zero_and_of_an_even_map_its_reference():
    point = torch.zeros(9, 9)
    point[4, 4] = 1
    assert change_spread(point, 0.9)["radius"] == 0
    even = change_spread(torch.ones(9, 9), 0.9)
    assert even["ratio"] == 1 and even["centroid"] == [4.0, 4.0]


def test_region_mask_splits_the_grid_at_the_box_edge():
    left = region_mask(LEFT, 4, 6)
    assert left[:, :3].all() and not left[:, 3:].any()
    assert region_mask([0, 0, 1, 1], 5, 5).all()


def test_feature_selectors_resolve_or_name_what_is_missing():
    net = torch.nn.Module()
    net.up_blocks = torch.nn.ModuleList([torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)])
    net.block = torch.nn.Module()
    net.block.attn2 = torch.nn.Identity()
    assert resolve_features(net, ["up_blocks", "attn2"]) == {"up_blocks": ["up_blocks.0", "up_blocks.1"],
                                                             "attn2": ["block.attn2"]}
    with pytest.raises(ValueError, match="nothing_here"):
        resolve_features(net, ["nothing_here"])


# -- the sigma <-> timestep mapping and the denoiser's parameterizations -----------------------------

def test_sigma_to_timestep_inverts_the_scheduler_table():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    table = sigma_table(torch.cumprod(1 - betas, 0))
    for t in (0, 1, 250, 999):
        assert sigma_to_timestep(float(table[t]), table) == pytest.approx(t, abs=1e-6)
    mid = math.sqrt(float(table[10] * table[11]))  # geometric midpoint: halfway in log sigma
    assert sigma_to_timestep(mid, table) == pytest.approx(10.5, abs=1e-6)
    with pytest.raises(ValueError, match="outside"):
        sigma_to_timestep(float(table[-1]) * 1.01, table)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_each_parameterization_returns_x0_from_its_true_target(kind):
    generator = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, 4, 4, generator=generator), torch.randn(2, 3, 4, 4, generator=generator)
    sigma = 1.7
    alpha, s = 1 / math.sqrt(1 + sigma ** 2), sigma / math.sqrt(1 + sigma ** 2)  # VP: z = alpha x0 + s eps
    target = {"epsilon": eps, "v_prediction": alpha * eps - s * x0, "sample": x0}[kind]
    assert torch.allclose(denoiser_from_prediction(x0 + sigma * eps, sigma, target, kind), x0, atol=1e-5)


def test_an_fp16_only_snapshot_is_loaded_as_the_fp16_variant(tmp_path):
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "diffusion_pytorch_model.fp16.safetensors").touch()
    assert weights_variant(tmp_path) == "fp16"
    (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").touch()
    assert weights_variant(tmp_path) is None


# -- the spec -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, field", [
    ({"sigmas": [0.5, -1]}, r"sigmas\[1\]"),
    ({"noise_samples": 0}, "noise_samples"),
    ({"positions": [[0.5, 1.5]]}, r"positions\[0\]"),
    ({"colour": 1}, "unknown field"),
    ({"prompt_sets": [{"name": "a", "parts": [{"name": "x", "text": "x"}]}]}, r"prompt_sets\[0\]\.parts"),
    ({"prompt_sets": [{"name": "a", "parts": [{"name": "x", "text": "x"},
                                              {"name": "y", "text": "y", "region": [0.6, 0, 0.4, 1]}]}]},
     r"prompt_sets\[0\]\.parts\[1\]\.region"),
])
def test_a_bad_spec_names_its_field(change, field):
    spec = {"prompt_sets": [{"name": "a", "parts": [{"name": "x", "text": "x"}, {"name": "y", "text": "y"}]}],
            "sigmas": [1.0]}
    spec.update(change)
    with pytest.raises(UserError, match=field):
        parse_spec(spec)


# -- tiny diffusers pipelines and the CLI end to end ---------------------------------------------------

WORDS = ("a", "photo", "cat", "dog", "red", "blue")


def write_tokenizer(folder):
    """A CLIPTokenizer from a small vocabulary: letters (alone and word-final), no merges."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in list(string.ascii_lowercase) + [c + "</w>" for c in string.ascii_lowercase] + [",</w>"]:
        vocab[token] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=32)


def build_tiny_pipeline(folder, kind: str):
    """A random-weight SD or SDXL pipeline (UNet 8x8 latents, two levels, ~50k parameters) saved
    with save_pretrained."""
    from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline,
                           StableDiffusionXLPipeline, UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    tokenizer = write_tokenizer(folder.parent / f"{kind}-tokenizer")
    text = dict(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=32, projection_dim=16,
                bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vae = AutoencoderKL(block_out_channels=(8,), layers_per_block=1, down_block_types=("DownEncoderBlock2D",),
                        up_block_types=("UpDecoderBlock2D",), latent_channels=4, norm_num_groups=8)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1)
    unet = dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), norm_num_groups=8, attention_head_dim=2)
    if kind == "sd":
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=CLIPTextModel(CLIPTextConfig(**text)), tokenizer=tokenizer,
                                       unet=UNet2DConditionModel(cross_attention_dim=16, **unet), scheduler=scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    else:
        pipe = StableDiffusionXLPipeline(
            vae=vae, text_encoder=CLIPTextModel(CLIPTextConfig(**text)),
            text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**text)), tokenizer=tokenizer,
            tokenizer_2=tokenizer, scheduler=scheduler,
            unet=UNet2DConditionModel(cross_attention_dim=32, addition_embed_type="text_time",
                                      addition_time_embed_dim=4, projection_class_embeddings_input_dim=16 + 6 * 4,
                                      **unet))
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_pipelines(tmp_path_factory):
    pytest.importorskip("diffusers", reason="the t2i extra is not installed: pip install -e '.[t2i]'")
    pytest.importorskip("transformers", reason="the t2i extra is not installed: pip install -e '.[t2i]'")
    root = tmp_path_factory.mktemp("pipelines")
    return {kind: build_tiny_pipeline(root / kind, kind) for kind in ("sd", "sdxl")}


def write_spec(path, **overrides):
    spec = {"prompt_sets": [{"name": "pets", "base": "a photo", "parts": [
        {"name": "cat", "text": "a red cat", "region": LEFT}, {"name": "dog", "text": "a blue dog"}]}],
        "sigmas": [0.5, 4.0], "noise_samples": 2, "positions": 2, "sample_steps": 2, "radii": [1, 2, 4]}
    spec.update(overrides)
    path.write_text(json.dumps(spec))
    return path


def run_cli(model, spec, out, *extra):
    return main(["t2i", "locality", "--model", str(model), "--prompts", str(spec), "--out", str(out), *extra])


@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_cli_runs_end_to_end_on_a_tiny_pipeline(tiny_pipelines, tmp_path, kind):
    spec, out = write_spec(tmp_path / "spec.json"), tmp_path / "out"
    assert run_cli(tiny_pipelines[kind], spec, out) == 0
    report = json.loads((out / "locality.json").read_text())
    assert report["model"]["pipeline"] == {"sd": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline"}[kind]
    assert report["provenance"]["packages"]["diffusers"] and "git_revision" in report["provenance"]
    assert (out / "energy_vs_r.png").stat().st_size > 0 and (out / "cosines.png").stat().st_size > 0
    assert (out / "run.json").is_file()
    assert set(report["features"]) == {"output", "attn2", "up_blocks"}
    per_sigma = report["prompt_sets"][0]["per_sigma"]
    assert [r["sigma"] for r in per_sigma] == [0.5, 4.0]
    assert 0 < per_sigma[0]["timestep"] < per_sigma[1]["timestep"] < 999
    for rec in per_sigma:
        within = rec["spatial"]["curve"]["within"]
        assert within == sorted(within) and 0 <= within[0] and within[-1] <= 1 + 1e-9
        cat = rec["conditional"]["parts"]["cat"]
        assert 0 <= cat["region_share"] <= 1 and cat["region_area"] == 0.5
        assert "region_share" not in rec["conditional"]["parts"]["dog"]  # no region given
        cos = rec["features"]["attn2"]["mean_shift_cosine"]
        assert cos[0][0] == pytest.approx(1) and abs(cos[0][1]) <= 1 + 1e-9
        assert len(rec["features"]["attn2"]["modules"]) == 4 and len(rec["features"]["up_blocks"]["modules"]) == 2
    # reproducible: the same spec again (with --force) gives the same numbers
    assert run_cli(tiny_pipelines[kind], spec, out, "--force") == 0
    assert json.loads((out / "locality.json").read_text())["prompt_sets"] == report["prompt_sets"]


def test_the_cli_maps_sigma_to_the_unet_call_as_documented(tiny_pipelines):
    from empirical.t2i.model import load_denoiser

    denoiser = load_denoiser(tiny_pipelines["sd"], None)
    t = 300
    sigma = float(denoiser.table[t])
    cond = denoiser.encode("a red cat")
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        abar = denoiser.pipeline.scheduler.alphas_cumprod[t]
        eps = denoiser.module(x * abar.sqrt(), torch.tensor([t]), encoder_hidden_states=cond.embeddings).sample
        assert torch.allclose(denoiser(x, sigma, cond), x - sigma * eps, atol=1e-4)


def test_an_existing_result_is_kept_without_force_and_after_a_bad_spec(tiny_pipelines, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "locality.json").write_text("earlier result")
    assert run_cli(tiny_pipelines["sd"], write_spec(tmp_path / "spec.json"), out) == 2
    assert "--force" in capsys.readouterr().err
    bad = write_spec(tmp_path / "bad.json", sigmas=[0.5, 1e6])  # beyond the scheduler's sigma_max
    assert run_cli(tiny_pipelines["sd"], bad, out, "--force") == 2
    assert r"sigmas[1]" in capsys.readouterr().err
    bad = write_spec(tmp_path / "bad2.json", features=["attn7"])
    assert run_cli(tiny_pipelines["sd"], bad, out, "--force") == 2
    err = capsys.readouterr().err
    assert "features" in err and "attn7" in err
    assert (out / "locality.json").read_text() == "earlier result"
    assert sorted(p.name for p in out.iterdir()) == ["locality.json"]


def test_a_missing_or_incomplete_model_folder_is_named(tiny_pipelines, tmp_path, capsys):
    spec, out = write_spec(tmp_path / "spec.json"), tmp_path / "out"
    assert run_cli(tmp_path / "nowhere", spec, out) == 2
    assert "no such folder" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(tiny_pipelines["sdxl"], broken)
    shutil.rmtree(broken / "text_encoder_2")
    assert run_cli(broken, spec, out) == 2
    assert "no text_encoder_2/" in capsys.readouterr().err
    (broken / "model_index.json").unlink()
    assert run_cli(broken, spec, out) == 2
    assert "no model_index.json" in capsys.readouterr().err
    assert not out.exists()
