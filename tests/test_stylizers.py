"""The Magenta networks as torch modules (issue 11): the ports reproduce the shipped ONNX files, run at
any size on the engine's device, and take any painting."""
from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest
import torch

from flowstyle import FlowstyleError
from flowstyle.fast.magenta import STYLE_SIZE, MagentaStylizer, cpu_has_bfloat16, model_path
from flowstyle.fast.networks import ArbitraryTransformer, MultiStyleTransformer, Quantizable, StylePredictor
from flowstyle.fast.onnx_weights import OnnxTensors, load_weights, read_onnx
from flowstyle.io import read_image, write_png
from flowstyle.io.styles import StyleRef
from flowstyle.settings import Settings
from shared_data import REPO

ort = pytest.importorskip("onnxruntime")  # only to compare against; the engine never imports it
sys.path.insert(0, str(REPO / "bench"))
from onnx_reference import ARBITRARY_SIZE, OnnxStylizer, session  # noqa: E402



@pytest.fixture(autouse=True)
def no_grad():
    """Inference only, in this module's tests (grad mode is global: never switch it off for the session)."""
    with torch.no_grad():
        yield


@pytest.fixture
def frames(data_dir):
    """Two real frames of the Sintel demo clip, (436, 1024, 3) float32."""
    folder = data_dir / "clips" / "sintel_raft_demo"
    return [read_image(folder / f"frame_{i:04d}.png")[0] for i in (1, 8)]


@pytest.fixture
def painting(data_dir):
    return data_dir / "styles" / "starry_night.jpg"


def square_crop(rgb: np.ndarray, size: int = STYLE_SIZE) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = min(h, w)
    crop = rgb[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def native_frame(rgb: np.ndarray) -> np.ndarray:
    """A frame as the old path fed the arbitrary transformer: 384 px long side, reflect-padded square."""
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (ARBITRARY_SIZE, round(h * ARBITRARY_SIZE / w)), interpolation=cv2.INTER_AREA)
    return np.pad(small, ((0, ARBITRARY_SIZE - small.shape[0]), (0, 0), (0, 0)), mode="reflect")


def nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]


def port(name: str):
    net = {"multistyle26": MultiStyleTransformer, "arbitrary_predict": StylePredictor,
           "arbitrary_transform": ArbitraryTransformer}[name]()
    tensors = read_onnx(model_path(name))
    return load_weights(net, tensors).eval(), tensors


def onnx_steps(name: str, feeds: list) -> dict:
    """Every quantized tensor of an int8 file as onnxruntime computes it: name -> int8 array."""
    import onnx

    model = onnx.load(str(model_path(name)))
    names = [n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    del model.graph.output[:]
    model.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.INT8, None) for n in names)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in sess.get_inputs()]
    return {n.removesuffix("_int8"): v for n, v in zip(names, sess.run(names, dict(zip(inputs, feeds))))}


def step_by_step(net: Quantizable, tensors: OnnxTensors, steps: dict, *args) -> dict:
    """Run ``net`` with the file's rounding, each step fed onnxruntime's inputs (so a one-step
    rounding tie does not snowball): name -> (largest difference in steps, number of differing values, size)."""
    found = {}

    def check(name, x):
        scale, zero, lo, hi = tensors.activations[name]
        mine = torch.clamp(torch.round(x / scale) + zero, lo, hi)
        ref = torch.from_numpy(steps[name].astype(np.float32))
        if ref.shape != mine.shape:
            ref = ref.permute(0, 3, 1, 2) if ref.ndim == 4 and ref.permute(0, 3, 1, 2).shape == mine.shape \
                else ref.reshape(mine.shape)
        d = (mine - ref).abs()
        found[name] = (int(d.max()), int((d > 0).sum()), d.numel())
        return (ref - zero) * scale

    for m in net.modules():
        if isinstance(m, Quantizable):
            m._quant = check
    net(*args)
    return found


class TestOnnxWeights:
    @pytest.mark.parametrize("name", ["multistyle26", "arbitrary_predict", "arbitrary_transform"])
    def test_every_layer_finds_its_tensor(self, name):
        net, tensors = port(name)
        declared = [n for m in net.modules() for n in getattr(m, "onnx_params", {}).values()]
        assert declared and all(n in tensors.tensors for n in declared)

    def test_int8_files_carry_their_rounding(self):
        assert len(read_onnx(model_path("arbitrary_transform")).activations) == 195
        assert read_onnx(model_path("multistyle26")).activations == {}

    def test_exception_wrong_shape(self):
        net, tensors = port("arbitrary_transform")
        bad = dict(tensors.tensors)
        bad["transformer/contract/conv1/weights"] = np.zeros((8, 3, 3, 3), np.float32)
        with pytest.raises(FlowstyleError, match=r"conv1/weights' is \(8, 3, 3, 3\), expected \(8, 3, 9, 9\)") as e:
            load_weights(ArbitraryTransformer(), OnnxTensors(tensors.path, bad))
        assert "\n" not in str(e.value)

    def test_exception_missing_tensor(self):
        _, tensors = port("multistyle26")
        with pytest.raises(FlowstyleError, match="has no tensor 'transformer/contract/conv1/weights'"):
            load_weights(ArbitraryTransformer(), tensors)

    def test_exception_unreadable_file(self, tmp_path):
        (tmp_path / "broken.onnx").write_bytes(b"not a network")
        with pytest.raises(FlowstyleError, match="cannot read network") as e:
            read_onnx(tmp_path / "broken.onnx")
        assert "\n" not in str(e.value)


class TestMultiStylePort:
    """The float 26-style file: the port gives the file's output (max abs difference <= 2e-3)."""

    @pytest.mark.parametrize("builtin", [0, 7, 19])
    def test_matches_onnx(self, frames, builtin):
        net, _ = port("multistyle26")
        w = np.zeros(26, np.float32)
        w[builtin] = 1.0
        x = frames[0][:436, :1024]
        ref = session("multistyle26").run(None, {"image": x.transpose(2, 0, 1)[None].copy(), "style_weights": w})[0]
        out = net(nchw(x), torch.from_numpy(w)).numpy()
        assert np.abs(out - ref).max() <= 2e-3

    def test_blend_of_styles_matches_onnx(self, frames):
        net, _ = port("multistyle26")
        w = np.zeros(26, np.float32)
        w[[3, 18]] = 0.5
        x = frames[1][:, :512]
        ref = session("multistyle26").run(None, {"image": x.transpose(2, 0, 1)[None].copy(), "style_weights": w})[0]
        assert np.abs(net(nchw(x), torch.from_numpy(w)).numpy() - ref).max() <= 2e-3


class TestInt8Ports:
    """The two int8 files, with their quantize/dequantize steps emulated.

    Each of the file's rounding steps (65 in the predictor, 195 in the transformer) is checked fed
    onnxruntime's own inputs: the port gives the same int8 values except at rounding ties (a float
    sum landing within float32 error of a half step: at most one step, at fewer than 1e-4 of the
    values), and the output step (the transformer's sigmoid) agrees within 2e-3. Run freely, such a
    tie can flip a channel's quantized variance and change the output visibly: onnxruntime disagrees
    with itself that way between its optimization levels (bench/stylizers.py prints both).
    """

    def assert_reproduced(self, found: dict, total: int):
        assert len(found) == total  # every rounding step of the file was visited
        assert max(d for d, _, _ in found.values()) <= 1
        assert sum(n for _, n, _ in found.values()) <= 1e-4 * sum(s for _, _, s in found.values())

    def test_predictor(self, painting):
        net, tensors = port("arbitrary_predict")
        style = square_crop(read_image(painting)[0])
        found = step_by_step(net, tensors, onnx_steps("arbitrary_predict", [style[None]]), nchw(style))
        self.assert_reproduced(found, 65)

    def test_transformer(self, frames, painting):
        net, tensors = port("arbitrary_transform")
        vector = OnnxStylizer(StyleRef(image=str(painting))).vector
        for frame in frames:
            x = native_frame(frame)
            steps = onnx_steps("arbitrary_transform", [x[None], vector.reshape(1, 1, 1, -1)])
            found = step_by_step(net, tensors, steps, nchw(x), torch.from_numpy(vector)[None])
            self.assert_reproduced(found, 195)
            assert found["transformer/expand/conv3/conv/Sigmoid"][0] * tensors.activations[
                "transformer/expand/conv3/conv/Sigmoid"][0] <= 2e-3

    def test_breaking_the_norm_is_caught(self, frames, painting):
        net, tensors = port("arbitrary_transform")
        net.residual["residual3"].conv1.norm.gamma.weight.mul_(-1)  # a flipped weight
        vector = OnnxStylizer(StyleRef(image=str(painting))).vector
        x = native_frame(frames[0])
        found = step_by_step(net, tensors, onnx_steps("arbitrary_transform", [x[None], vector.reshape(1, 1, 1, -1)]),
                             nchw(x), torch.from_numpy(vector)[None])
        with pytest.raises(AssertionError):
            self.assert_reproduced(found, 195)

    def test_float_path_is_close_to_the_file(self, frames, painting):
        """Without activation rounding the output keeps the file's look (same colours and strokes)."""
        net, _ = port("arbitrary_transform")
        vector = OnnxStylizer(StyleRef(image=str(painting))).vector
        x = native_frame(frames[0])
        sess = session("arbitrary_transform")
        names = [i.name for i in sess.get_inputs()]
        ref = sess.run(None, {names[0]: x[None], names[1]: vector.reshape(1, 1, 1, -1)})[0][0]
        out = net(nchw(x), torch.from_numpy(vector)[None])[0].permute(1, 2, 0).numpy()
        assert np.abs(out - ref).mean() < 0.05
        assert np.abs(out.mean((0, 1)) - ref.mean((0, 1))).max() < 0.03


class TestMagentaStylizer:
    @pytest.mark.parametrize("shape", [(37, 53), (16, 16), (436, 1024), (101, 40)])
    def test_cardinality(self, frames, painting, shape):
        h, w = shape
        x = np.ascontiguousarray(frames[0][:h, :w])
        for st in (StyleRef(builtin=7), StyleRef(image=str(painting))):
            out = MagentaStylizer([st])(x)
            assert out.shape == x.shape and out.dtype == np.float32
            assert 0.0 <= out.min() and out.max() <= 1.0 and out.std() > 0.02

    def test_builtin_matches_the_old_path(self, frames):
        old, new = OnnxStylizer(StyleRef(builtin=7)), MagentaStylizer([StyleRef(builtin=7)])
        x = frames[0][:, :1021]  # not a multiple of 4
        assert np.abs(new(x) - old(x)).max() <= 2e-3

    def test_batch_equals_frames_one_by_one(self, frames, painting):
        """In float32 exactly (to float rounding); with the default's bfloat16 convs oneDNN blocks a batch
        differently, so there within their tolerance."""
        x = torch.stack([torch.from_numpy(f).permute(2, 0, 1) for f in frames])[..., :200, :300]
        for precision, tolerance in (("float", 1e-4), ("auto", 8 / 255)):
            st = MagentaStylizer([StyleRef(image=str(painting))], precision=precision)
            batch = st.batch(x)
            for i in range(len(frames)):
                assert (batch[i:i + 1] - st.batch(x[i:i + 1])).abs().max() <= tolerance

    def test_painting_strokes_at_full_resolution(self, frames, painting):
        """At 1024 px the old path is an upscaled 384-px picture: almost nothing above its band limit."""
        def fine_energy(rgb):
            spec = np.abs(np.fft.rfft2(rgb.mean(axis=2) - rgb.mean())) ** 2
            fy = np.abs(np.fft.fftfreq(rgb.shape[0]))[:, None]
            fx = np.fft.rfftfreq(rgb.shape[1])[None, :]
            return spec[np.maximum(fy, fx) > 0.5 * ARBITRARY_SIZE / 1024].sum() / spec.sum()

        st = StyleRef(image=str(painting))
        old, new = OnnxStylizer(st)(frames[0]), MagentaStylizer([st])(frames[0])
        assert fine_energy(new) > 3 * fine_energy(old)

    def test_stroke_scale_makes_strokes_larger(self, frames):
        x = frames[0][:256, :512]

        def detail(rgb):
            return float(np.abs(cv2.Laplacian(rgb.mean(axis=2), cv2.CV_32F)).mean())

        fine, coarse = (MagentaStylizer([StyleRef(builtin=7)], stroke_scale=s)(x) for s in (1.0, 2.0))
        assert detail(coarse) < 0.7 * detail(fine)
        assert np.abs(coarse.mean((0, 1)) - fine.mean((0, 1))).max() < 0.05  # same palette

    def test_quantized_emulation_matches_int8_file_look(self, frames, painting):
        st = StyleRef(image=str(painting))
        q, f = MagentaStylizer([st], quantized=True), MagentaStylizer([st])
        x = frames[0][:200, :320]
        assert np.abs(q(x) - f(x)).mean() < 0.06

    def test_exception_no_style(self, frames):
        with pytest.raises(FlowstyleError, match="no style given"):
            MagentaStylizer()(frames[0])

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
    def test_half_precision_on_gpu_agrees(self, frames, painting):
        for st in (StyleRef(builtin=7), StyleRef(image=str(painting))):
            gpu, cpu = MagentaStylizer([st], device="cuda"), MagentaStylizer([st])
            assert gpu.dtype == torch.float16
            assert np.abs(gpu(frames[0]) - cpu(frames[0])).max() <= 2 / 255

    @pytest.mark.skipif(not cpu_has_bfloat16(), reason="this CPU has no native bfloat16 (the path stays float32)")
    def test_bfloat16_convs_on_cpu_stay_close_to_float(self, frames, painting):
        """auto: the arbitrary network's 3x3 convs in bfloat16 (engaged: the bytes differ), within 8/255 of
        float and far closer to it than the shipped int8 file's own rounding; built-in styles untouched."""
        st = [StyleRef(image=str(painting))]
        auto, exact = MagentaStylizer(st), MagentaStylizer(st, precision="float")
        int8 = MagentaStylizer(st, quantized=True)
        x = frames[0][:216, :512]
        a, f = auto(x), exact(x)
        diff = np.abs(a - f)
        assert 0 < diff.max() <= 8 / 255 and diff.mean() < 1 / 255
        assert diff.mean() < np.abs(int8(x) - f).mean() / 5
        b = [StyleRef(builtin=7)]
        assert np.array_equal(MagentaStylizer(b)(x), MagentaStylizer(b, precision="float")(x))

    def test_precision_float_is_float32_everywhere(self, frames, painting):
        s = MagentaStylizer([StyleRef(image=str(painting))], precision="float")
        s(frames[0][:64, :64])
        assert s.dtype == torch.float32 and not s.cpu_bf16
        convs = [m for m in s.network("arbitrary_transform").modules() if hasattr(m, "cpu_dtype")]
        assert convs and all(m.cpu_dtype is None for m in convs)
        with pytest.raises(FlowstyleError, match="--precision must be auto or float"):
            MagentaStylizer(precision="half")


class TestStyleImages:
    """Any painting a user picks: far from square, tiny, huge, gray."""

    def stylize(self, path, frame):
        out = MagentaStylizer([StyleRef(image=str(path))])(frame)
        assert out.shape == frame.shape and np.isfinite(out).all() and out.std() > 0.02
        return out

    def test_far_from_square(self, tmp_path, painting, frames):
        rgb = read_image(painting)[0]
        write_png(tmp_path / "strip.png", np.ascontiguousarray(rgb[:40, :]))  # 40 px tall, 20:1
        write_png(tmp_path / "column.png", np.ascontiguousarray(rgb[:, :30]))
        for name in ("strip.png", "column.png"):
            self.stylize(tmp_path / name, frames[0][:128, :256])

    def test_tiny_and_huge(self, tmp_path, painting, frames):
        rgb = read_image(painting)[0]
        write_png(tmp_path / "tiny.png", cv2.resize(rgb, (16, 16), interpolation=cv2.INTER_AREA))
        write_png(tmp_path / "huge.png", cv2.resize(rgb, (6000, 4752), interpolation=cv2.INTER_LINEAR))
        small = self.stylize(tmp_path / "tiny.png", frames[0][:128, :256])
        big = self.stylize(tmp_path / "huge.png", frames[0][:128, :256])
        assert np.abs(big - MagentaStylizer([StyleRef(image=str(painting))])(frames[0][:128, :256])).mean() < 0.05
        assert small.shape == big.shape

    def test_grayscale_painting(self, tmp_path, painting, frames):
        gray = cv2.cvtColor((read_image(painting)[0] * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        cv2.imwrite(str(tmp_path / "gray.png"), gray)
        out = self.stylize(tmp_path / "gray.png", frames[0][:128, :256])
        assert np.abs(out[..., 0] - out[..., 2]).mean() < 0.08  # a gray painting gives a near-gray result


class TestStrokeScaleSetting:
    def test_part_of_the_fingerprint(self):
        assert Settings().fingerprint() != Settings(stroke_scale=2.0).fingerprint()

    @pytest.mark.parametrize("value", [0.0, -1.0, 100.0])
    def test_exception(self, value):
        with pytest.raises(FlowstyleError, match="--stroke-scale"):
            Settings(stroke_scale=value).resolved()
