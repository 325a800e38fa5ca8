"""The timed loop both peer benchmarks share: warm-up steps, timed steps, one JSON line."""
import json
import resource
import sys
import time


def measure(step, args, info, label):
    """Runs `step` args.warmup times untimed and args.steps times timed, adds the figures to
    `info`, prints a summary on stderr (prefixed by `label`) and `info` as one JSON line."""
    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    info.update({"steps": args.steps, "warmup": args.warmup, "seconds": seconds,
                 "images_per_s": args.steps * args.batch_size / seconds,
                 "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    print(f"{label}: {info['images_per_s']:.2f} images/s, peak RSS {info['peak_rss_mb']:.0f} MB", file=sys.stderr)
    print(json.dumps(info))
