"""Times peer libraries on convkit's bench layers; used by `cargo xtask bench --compare`.

Reads a JSON job from stdin: {"peers": [...], "threads": n, "min_seconds": s,
"min_runs": r, "max_runs": m, "layers": [{"name", "n", "c", "k", "h", "w", "kh", "kw",
"stride": [sh, sw], "dilation": [dh, dw], "pads": [top, left, bottom, right], "groups"}]}.
Writes one JSON object to stdout: {"peers": {peer: {"status": "ok" | why not,
"version": str, "median_ms": {layer: ms}}}}. Every peer runs NCHW f32 with constant
weights and a bias, on `threads` intra-op threads, timed like convkit's rows (median of at
least `min_runs` runs and at least `min_seconds`, at most `max_runs`).
"""

import json
import sys
import time


def median_ms(run, job):
    run()
    samples = []
    start = time.perf_counter()
    while len(samples) < job["min_runs"] or (
        time.perf_counter() - start < job["min_seconds"] and len(samples) < job["max_runs"]
    ):
        t0 = time.perf_counter()
        run()
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return samples[len(samples) // 2] * 1e3


def onnxruntime_peer(job):
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    options = ort.SessionOptions()
    options.intra_op_num_threads = job["threads"]
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    rng = np.random.default_rng(1)
    times = {}
    for layer in job["layers"]:
        w_shape = [layer["k"], layer["c"] // layer["groups"], layer["kh"], layer["kw"]]
        weights = numpy_helper.from_array(rng.uniform(-1, 1, w_shape).astype(np.float32), "w")
        bias = numpy_helper.from_array(rng.uniform(-1, 1, [layer["k"]]).astype(np.float32), "b")
        node = helper.make_node(
            "Conv", ["x", "w", "b"], ["y"],
            strides=layer["stride"], dilations=layer["dilation"], pads=layer["pads"],
            group=layer["groups"], kernel_shape=[layer["kh"], layer["kw"]],
        )
        x_shape = [layer["n"], layer["c"], layer["h"], layer["w"]]
        graph = helper.make_graph(
            [node], "conv",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [weights, bias],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        x = rng.uniform(-1, 1, x_shape).astype(np.float32)
        times[layer["name"]] = median_ms(lambda: session.run(None, {"x": x}), job)
    return ort.__version__, times


def torch_peer(job):
    import torch

    torch.set_num_threads(job["threads"])
    times = {}
    with torch.inference_mode():
        for layer in job["layers"]:
            top, left, bottom, right = layer["pads"]
            x = torch.rand(layer["n"], layer["c"], layer["h"], layer["w"]) * 2 - 1
            if (top, left) != (bottom, right):
                x = torch.nn.functional.pad(x, (left, right, top, bottom))
                top = left = 0
            weights = torch.rand(layer["k"], layer["c"] // layer["groups"], layer["kh"], layer["kw"])
            bias = torch.rand(layer["k"])

            def run():
                torch.nn.functional.conv2d(
                    x, weights, bias, stride=layer["stride"], padding=(top, left),
                    dilation=layer["dilation"], groups=layer["groups"],
                )

            times[layer["name"]] = median_ms(run, job)
    return torch.__version__, times


PEERS = {"onnxruntime": onnxruntime_peer, "torch": torch_peer}


def main():
    job = json.load(sys.stdin)
    result = {}
    for peer in job["peers"]:
        if peer not in PEERS:
            result[peer] = {"status": f"unknown peer {peer}", "median_ms": {}}
            continue
        try:
            version, times = PEERS[peer](job)
            result[peer] = {"status": "ok", "version": version, "median_ms": times}
        except ImportError as error:
            result[peer] = {"status": f"not importable: {error}", "median_ms": {}}
        except Exception as error:  # a peer that fails must not sink the bench
            result[peer] = {"status": f"failed: {error!r}", "median_ms": {}}
    json.dump({"peers": result}, sys.stdout)


if __name__ == "__main__":
    main()
