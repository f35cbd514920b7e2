"""Time the official HRNet pose net (PyTorch) on the CPU; run by ``scripts/benchmark.py --side-by-side``.

This file is executed with the *official* environment's Python (one with torch), so it imports only torch and the
standard library. The network is built from ``lib/models/pose_hrnet.py`` of the official repository the user names:
a checkout (the file is read from the work tree) or a git mirror (read with ``git show HEAD:...``). Nothing of the
official code is stored in gluonpose.

Usage: python official_timer.py REPO WIDTH H W BATCH THREADS ITERS infer|train
Prints ``RESULT official <what> samples/s: <median over ITERS timed batches>``.
"""
import importlib.util
import os
import subprocess
import sys
import tempfile
import time


def load_pose_module(repo):
    rel = os.path.join("lib", "models", "pose_hrnet.py")
    path = os.path.join(repo, rel)
    if not os.path.isfile(path):
        source = subprocess.check_output(["git", "-C", repo, "show", "HEAD:lib/models/pose_hrnet.py"])
        path = os.path.join(tempfile.mkdtemp(), "pose_hrnet.py")
        with open(path, "wb") as f:
            f.write(source)
    spec = importlib.util.spec_from_file_location("official_pose_hrnet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_config(width, num_joints=17):
    """The official w32/w48 experiment's MODEL.EXTRA with the channels of ``width``."""
    def stage(branches, modules):
        return {"NUM_MODULES": modules, "NUM_BRANCHES": branches, "BLOCK": "BASIC", "NUM_BLOCKS": [4] * branches,
                "NUM_CHANNELS": [width * 2 ** i for i in range(branches)], "FUSE_METHOD": "SUM"}
    return {"MODEL": {"NUM_JOINTS": num_joints, "EXTRA": {
        "STAGE2": stage(2, 1), "STAGE3": stage(3, 4), "STAGE4": stage(4, 3),
        "FINAL_CONV_KERNEL": 1, "PRETRAINED_LAYERS": ["*"]}}}


def main(argv):
    import torch  # pylint: disable=import-outside-toplevel
    repo, width, h, w, batch, threads, iters, mode = argv
    width, h, w, batch, threads, iters = map(int, (width, h, w, batch, threads, iters))
    torch.set_num_threads(threads)
    net = load_pose_module(repo).PoseHighResolutionNet(official_config(width))
    x = torch.randn(batch, 3, h, w)
    if mode == "train":
        net.train()
        opt = torch.optim.Adam(net.parameters(), 1e-3)

        def step():
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    else:
        net.eval()

        def step():
            with torch.no_grad():
                net(x)
    step()
    times = []
    for _ in range(iters):
        tic = time.perf_counter()
        step()
        times.append(time.perf_counter() - tic)
    times.sort()
    median = times[len(times) // 2]
    print("torch %s, %d threads" % (torch.__version__, torch.get_num_threads()))
    print("RESULT official hrnet_w%d %dx%d batch %d %s samples/s: %.3f" % (width, h, w, batch, mode, batch / median))


if __name__ == "__main__":
    main(sys.argv[1:])
