"""Times peer libraries on convkit's bench layers; used by `cargo xtask bench --compare`.

A line protocol over stdin and stdout, so that the bench can time a layer's peers right after
its own rows of that layer (a shared host's speed drifts during a run: peers timed minutes
later would be compared against a different machine):

1. The bench writes the setup, one JSON line: {"peers": [...], "threads": n, "layers":
   [{"name", "n", "c", "k", "h", "w", "kh", "kw", "stride": [sh, sw], "dilation": [dh, dw],
   "pads": [top, left, bottom, right], "groups", "bias"}]}. The script prepares every peer on
   every layer (NCHW f32, constant weights, a bias where "bias" is true or absent, `threads`
   intra-op threads) and answers one
   line: {"peers": {peer: {"status": "ok" | why not, "version": str}}}.
2. Then, per layer, the bench writes {"layer": name, "min_seconds": s, "min_runs": r,
   "max_runs": m}; the script times each ready peer on it like convkit's rows (median of at
   least `min_runs` runs and at least `min_seconds`, at most `max_runs`) and answers
   {"median_ms": {peer: ms}, "failed": {peer: why}}.
3. End of input ends the script.
"""

import json
import sys
import time


def median_ms(run, request):
    run()
    samples = []
    start = time.perf_counter()
    while len(samples) < request["min_runs"] or (
        time.perf_counter() - start < request["min_seconds"]
        and len(samples) < request["max_runs"]
    ):
        t0 = time.perf_counter()
        run()
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return samples[len(samples) // 2] * 1e3


def onnxruntime_peer(setup):
    """Version, and a runner per layer: one session each, graph optimizations on."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    options = ort.SessionOptions()
    options.intra_op_num_threads = setup["threads"]
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    rng = np.random.default_rng(1)
    runners = {}
    for layer in setup["layers"]:
        w_shape = [layer["k"], layer["c"] // layer["groups"], layer["kh"], layer["kw"]]
        weights = numpy_helper.from_array(rng.uniform(-1, 1, w_shape).astype(np.float32), "w")
        initializers = [weights]
        if layer.get("bias", True):
            bias = rng.uniform(-1, 1, [layer["k"]]).astype(np.float32)
            initializers.append(numpy_helper.from_array(bias, "b"))
        node = helper.make_node(
            "Conv", ["x"] + [tensor.name for tensor in initializers], ["y"],
            strides=layer["stride"], dilations=layer["dilation"], pads=layer["pads"],
            group=layer["groups"], kernel_shape=[layer["kh"], layer["kw"]],
        )
        x_shape = [layer["n"], layer["c"], layer["h"], layer["w"]]
        graph = helper.make_graph(
            [node], "conv",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            initializers,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        x = rng.uniform(-1, 1, x_shape).astype(np.float32)
        runners[layer["name"]] = lambda session=session, x=x: session.run(None, {"x": x})
    return ort.__version__, runners


def torch_peer(setup):
    """Version, and a runner per layer: `conv2d` without autograd."""
    import torch

    torch.set_num_threads(setup["threads"])
    torch.set_grad_enabled(False)
    runners = {}
    for layer in setup["layers"]:
        top, left, bottom, right = layer["pads"]
        x = torch.rand(layer["n"], layer["c"], layer["h"], layer["w"]) * 2 - 1
        if (top, left) != (bottom, right):
            x = torch.nn.functional.pad(x, (left, right, top, bottom))
            top = left = 0
        weights = torch.rand(layer["k"], layer["c"] // layer["groups"], layer["kh"], layer["kw"])
        bias = torch.rand(layer["k"]) if layer.get("bias", True) else None
        arguments = dict(
            stride=layer["stride"], padding=(top, left), dilation=layer["dilation"],
            groups=layer["groups"],
        )
        runners[layer["name"]] = (
            lambda x=x, weights=weights, bias=bias, arguments=arguments:
            torch.nn.functional.conv2d(x, weights, bias, **arguments)
        )
    return torch.__version__, runners


PEERS = {"onnxruntime": onnxruntime_peer, "torch": torch_peer}


def answer(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main():
    setup = json.loads(sys.stdin.readline())
    statuses = {}
    ready = {}
    for peer in setup["peers"]:
        if peer not in PEERS:
            statuses[peer] = {"status": f"unknown peer {peer}"}
            continue
        try:
            version, runners = PEERS[peer](setup)
            statuses[peer] = {"status": "ok", "version": version}
            ready[peer] = runners
        except ImportError as error:
            statuses[peer] = {"status": f"not importable: {error}"}
        except Exception as error:  # a peer that fails must not sink the bench
            statuses[peer] = {"status": f"failed: {error!r}"}
    answer({"peers": statuses})
    for line in sys.stdin:
        request = json.loads(line)
        times, failed = {}, {}
        for peer, runners in ready.items():
            try:
                times[peer] = median_ms(runners[request["layer"]], request)
            except Exception as error:  # this layer goes without the peer's row
                failed[peer] = repr(error)
        answer({"median_ms": times, "failed": failed})


if __name__ == "__main__":
    main()
