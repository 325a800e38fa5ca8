#!/usr/bin/env python3
"""Checks that torch_unet.py's U-Net is the Keras reference's (Launch/reference/unet_keras.py):
the Keras model gets random weights and biases, its weights, a batch and its prediction and loss go
to an .npz; the torch model loads those weights (HWIO -> OIHW) and must give the same prediction
(NCHW and channels_last) and loss. Two interpreters, as the frameworks live in separate venvs:

    TF_PYTHON same_model.py keras FILE.npz [--upsample nearest|transpose] [--rows 32 --cols 32 --filters 4 --depth 2]
    TORCH_PYTHON same_model.py torch FILE.npz
(Launch/bench/peers/same_model.sh runs both, for both upsampling modes.)
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def keras_side(args):
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "0")
    sys.path.insert(0, os.path.join(HERE, "..", "..", "reference"))
    import numpy as np
    import unet_keras

    model = unet_keras.build_unet(args.rows, args.cols, args.filters, args.depth, args.upsample)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if layer.weights:  # biases too: Keras starts them at zero, which would hide a misplaced one
            kernel, bias = layer.get_weights()
            fan_in = np.prod(kernel.shape[:2]) * (kernel.shape[3] if type(layer).__name__ == "Conv2DTranspose" else kernel.shape[2])
            # He-scaled, so that the output stays away from the sigmoid's flat ends at any size.
            layer.set_weights([(np.sqrt(2 / fan_in) * rng.standard_normal(kernel.shape)).astype(np.float32),
                               (0.1 * rng.standard_normal(bias.shape)).astype(np.float32)])
    x = rng.standard_normal((3, args.rows, args.cols, 1)).astype(np.float32)
    y = (rng.random(x.shape) < 0.05).astype(np.float32)
    p = model.predict_on_batch(x)
    out = {"x": x, "y": y, "p": p, "loss": np.array(float(unet_keras.dice_coef_loss(y, p))),
           "shape": np.array([args.rows, args.cols, args.filters, args.depth]),
           "upsample": np.array(args.upsample), "params": np.array(model.count_params())}
    for kind, prefix in (("Conv2D", "c"), ("Conv2DTranspose", "t")):
        for i, layer in enumerate(l for l in model.layers if type(l).__name__ == kind):
            out[f"{prefix}{i}k"], out[f"{prefix}{i}b"] = layer.get_weights()
    np.savez(args.file, **out)


def torch_side(args):
    import numpy as np
    import torch
    sys.path.insert(0, HERE)
    from torch_unet import UNet, dice_loss

    d = np.load(args.file)
    rows, cols, filters, depth = (int(v) for v in d["shape"])
    upsample = str(d["upsample"])
    model = UNet(filters, depth, upsample)
    params = sum(p.numel() for p in model.parameters())
    # Module order (down, bottom, ups, up_pairs, out) lists the convolutions in Keras' creation order.
    convs = [m for m in model.modules() if type(m) is torch.nn.Conv2d]
    transposes = [m for m in model.modules() if type(m) is torch.nn.ConvTranspose2d]
    with torch.no_grad():
        for prefix, mods in (("c", convs), ("t", transposes)):
            for i, m in enumerate(mods):
                # Conv2D HWIO -> OIHW; Conv2DTranspose H W out in -> ConvTranspose2d in out H W.
                m.weight.copy_(torch.from_numpy(d[f"{prefix}{i}k"]).permute(3, 2, 0, 1))
                m.bias.copy_(torch.from_numpy(d[f"{prefix}{i}b"]))
    x = torch.from_numpy(d["x"]).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(d["y"]).permute(0, 3, 1, 2).contiguous()
    ref = torch.from_numpy(d["p"]).permute(0, 3, 1, 2)
    ok = params == int(d["params"])
    print(f"{rows}x{cols} filters {filters} depth {depth} {upsample}: parameters keras {int(d['params']):,} torch {params:,}; "
          f"Keras' prediction in [{float(ref.min()):.3f}, {float(ref.max()):.3f}]")
    for fmt, name in ((torch.contiguous_format, "nchw"), (torch.channels_last, "channels_last")):
        m = model.to(memory_format=fmt)
        with torch.no_grad():
            p = m(x.contiguous(memory_format=fmt))
        diff = float((p - ref).abs().max())
        loss = float(dice_loss(y, p))
        good = diff < 1e-4 and abs(loss - float(d["loss"])) < 1e-5
        ok &= good
        print(f"  torch {name}: max |p_torch - p_keras| {diff:.2e}, loss torch {loss:.7f} keras {float(d['loss']):.7f}"
              f" {'OK' if good else 'DIFFERENT'}")
    sys.exit(0 if ok else 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("side", choices=["keras", "torch"])
    ap.add_argument("file")
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--filters", type=int, default=4)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--upsample", choices=["nearest", "transpose"], default="nearest")
    args = ap.parse_args()
    keras_side(args) if args.side == "keras" else torch_side(args)


if __name__ == "__main__":
    main()
