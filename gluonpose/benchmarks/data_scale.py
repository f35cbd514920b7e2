"""Data at the report's scale: ``scripts/benchmark.py --data-scale``.

The report trains on 599,040 instances (Table 1: COCO 149,760, MPII 28,800, AI Challenger
377,856, CrowdPose 42,624). :func:`generate` writes annotation files of exactly those sizes in the
four readers' formats by repeating the sample annotations (new ids, the sample images reused),
once, into a cached folder. :func:`measure` then times the start-up from the four annotation
files to the first batch (the training command's own builders) and follows the memory of the
training process and its loader worker processes over ``batches`` batches: the PSS
(proportional set size: shared pages counted once in total) of every process, summed.
"""
import json
import os
import time

__all__ = ["REPORT_COUNTS", "generate", "measure", "pss_mib"]

#: Table 1 of the report: training instances per dataset
REPORT_COUNTS = {"coco": 149760, "mpii": 28800, "aic": 377856, "crowdpose": 42624}
_FILES = {"coco": "test_coco.json", "mpii": "test_mpii.json", "aic": "test_aic.json",
          "crowdpose": "test_crowdpose.json"}


def _repeat_coco_style(sample, count):
    """A COCO-style dict with ``count`` annotations: the sample's, repeated with new ids."""
    images, anns = [], []
    copy = 0
    while len(anns) < count:
        for img in sample["images"]:
            images.append(dict(img, id=copy * 1000003 + img["id"]))
        for ann in sample["annotations"]:
            if len(anns) == count:
                break
            anns.append(dict(ann, id=len(anns) + 1, image_id=copy * 1000003 + ann["image_id"]))
        copy += 1
    used = {a["image_id"] for a in anns}
    out = {k: v for k, v in sample.items() if k not in ("images", "annotations")}
    out.update(images=[i for i in images if i["id"] in used], annotations=anns)
    return out


def generate(samples_root, cache_root, counts=REPORT_COUNTS):
    """``{dataset: (ann_file, img_prefix)}`` of the generated record set (made once, cached)."""
    key = "_".join("%s%d" % (k, counts[k]) for k in sorted(counts))
    folder = os.path.join(cache_root, "data_scale_" + key)
    out = {}
    for name, count in counts.items():
        path = os.path.join(folder, name + ".json")
        out[name] = (os.path.abspath(path), os.path.abspath(os.path.join(samples_root, name)))
        if os.path.isfile(path):
            continue
        os.makedirs(folder, exist_ok=True)
        sample = json.load(open(os.path.join(samples_root, name, _FILES[name])))
        data = ([sample[i % len(sample)] for i in range(count)] if isinstance(sample, list)
                else _repeat_coco_style(sample, count))
        tmp = path + ".tmp%d" % os.getpid()
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    return out


def pss_mib(pid):
    """PSS of a process in MiB (``/proc/PID/smaps_rollup``), 0 when it is gone."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return 0.0
    return 0.0


def rss_mib(pid):
    """Resident memory of a process in MiB (shared pages counted in full)."""
    try:
        with open("/proc/%d/statm" % pid) as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2.0 ** 20
    except OSError:
        return 0.0


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _config(files, batch, workers, size_wh):
    from ..config import load_config
    train = [{"type": k, "ann_file": a, "img_prefix": p} for k, (a, p) in files.items()]
    return load_config(None, ["data.train=%s" % json.dumps(train), "data.val=null",
                              "loader.batch_size_per_device=%d" % batch,
                              "loader.num_workers=%d" % workers,
                              "codec.input_size=[%d, %d]" % size_wh,
                              "codec.heatmap_size=[%d, %d]" % (size_wh[0] // 4, size_wh[1] // 4),
                              "model.name=mshrnet_w8_2stage"])


def _breakdown():
    """``'T MiB summed: training process A MiB, N loader processes B MiB (max C each)'``."""
    main = pss_mib(os.getpid())
    kids = [pss_mib(p) for p in _children(os.getpid())]
    return "%.0f MiB summed: training process %.0f MiB, %d loader processes %.0f MiB (max %.0f " \
        "each)" % (main + sum(kids), main, len(kids), sum(kids), max(kids or [0]))


def measure(files, *, batches=1000, batch=8, workers=8, size_wh=(192, 256), say=print):
    """Start-up seconds to the first batch and the summed PSS over ``batches`` batches."""
    import gc
    import mxnet as mx
    from ..engine.runner import _build_data
    t0 = time.perf_counter()
    cfg = _config(files, batch, workers, size_wh)
    before = rss_mib(os.getpid())
    _, dataset, _, loader, _ = _build_data(cfg, [mx.cpu()], 0, 1, 0)
    records_mib = rss_mib(os.getpid()) - before
    it = iter(loader)
    next(it)
    startup = time.perf_counter() - t0
    say("start-up from the four annotation files to the first batch: %.1f s (%d records; the "
        "training process's resident memory grew by %.0f MiB reading them)"
        % (startup, len(dataset), records_mib))
    say("  batch 1: PSS %s" % _breakdown())
    peak, samples, tic = 0.0, [], time.perf_counter()
    for k in range(1, batches):
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            next(it)
        if k % 100 == 0 or k == batches - 1:
            pids = [os.getpid()] + _children(os.getpid())
            total = sum(pss_mib(p) for p in pids)
            peak = max(peak, total)
            samples.append((k, total, len(pids) - 1))
            say("  batch %d (%.0f s): PSS %s" % (k + 1, time.perf_counter() - tic, _breakdown()))
    gc.collect()
    say("RESULT data-scale startup s: %.2f; peak summed PSS MiB: %.0f; records MiB: %.0f"
        % (startup, peak, records_mib))
    return {"startup_s": startup, "records": len(dataset), "records_mib": records_mib,
            "peak_pss_mib": peak, "samples": samples}
