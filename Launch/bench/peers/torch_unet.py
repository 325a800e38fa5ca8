#!/usr/bin/env python3
"""PyTorch peer of `unet bench`: the tutorial's U-Net (the same as Launch/reference/unet_keras.py
and UNetTrainer's), trained or run on random data, timed the same way.

    torch_unet.py [--mode train|infer] [--rows 64 --cols 80 --batch-size 32 --filters 32 --depth 4]
                  [--upsample nearest|transpose] [--layout nchw|channels_last] [--threads 2]
                  [--steps 5 --warmup 1] [--seed 1] [--params-only]

Model: encoder level i = 0..depth-1: two 3x3 same-padded convolutions with ReLU (filters * 2**i
channels), 2x2 max-pooling; bottom: two convolutions of filters * 2**depth; decoder level
i = depth-1..0: 2x nearest upsampling (or ConvTranspose2d 2x2 stride 2 to filters * 2**i channels,
linear, with bias), concatenation [up, skip_i] along channels, two 3x3 convolutions with ReLU;
output: 1x1 convolution to one channel, sigmoid. Weights Glorot-uniform, biases zero, as Keras.
Loss: -Dice over the flattened batch, smooth 1. Adam, lr 1e-5, betas (0.9, 0.999), eps 1e-7 (Keras').

Data, as `unet bench`: images N(0, 1), masks Bernoulli(0.05), one batch reused every step.
Timing: --warmup untimed steps, then --steps timed ones (a training step: forward, loss,
backward, Adam; inference: forward under torch.inference_mode()).

Prints one JSON line: images_per_s, peak_rss_mb (getrusage ru_maxrss / 1024, the process'
peak, including the import of torch), mode, layout, threads, params, shape and versions.
With --params-only it builds the model, prints {"params": N, ...} and exits without running it.
"""
import argparse
import json
import sys

from measure import measure

import torch
from torch import nn
import torch.nn.functional as F


class UNet(nn.Module):
    def __init__(self, filters=32, depth=4, upsample="nearest"):
        super().__init__()
        if upsample not in ("nearest", "transpose"):
            raise ValueError(f"upsample must be 'nearest' or 'transpose', got {upsample!r}")
        self.upsample = upsample
        self.down = nn.ModuleList()
        channels = 1
        for i in range(depth):
            n = filters * 2**i
            self.down.append(self._pair(channels, n))
            channels = n
        n = filters * 2**depth
        self.bottom = self._pair(channels, n)
        channels = n
        self.ups = nn.ModuleList()
        self.up_pairs = nn.ModuleList()
        for i in reversed(range(depth)):
            n = filters * 2**i
            if upsample == "transpose":
                self.ups.append(nn.ConvTranspose2d(channels, n, kernel_size=2, stride=2))
                up_channels = n
            else:
                self.ups.append(nn.Identity())
                up_channels = channels
            self.up_pairs.append(self._pair(up_channels + n, n))
            channels = n
        self.out = nn.Conv2d(channels, 1, kernel_size=1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _pair(cin, cout):
        return nn.Sequential(
            nn.Conv2d(cin, cout, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        )

    def forward(self, x):
        skips = []
        for pair in self.down:
            x = pair(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, pair, skip in zip(self.ups, self.up_pairs, reversed(skips)):
            if self.upsample == "transpose":
                x = up(x)
            else:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = pair(torch.cat([x, skip], dim=1))
        return torch.sigmoid(self.out(x))


def dice_loss(y_true, y_pred, smooth=1.0):
    """-Dice over the whole flattened batch (the tutorial's loss)."""
    t = y_true.reshape(-1)
    p = y_pred.reshape(-1)
    intersection = (t * p).sum()
    return -(2.0 * intersection + smooth) / (t.sum() + p.sum() + smooth)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["train", "infer"], default="train")
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--cols", type=int, default=80)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--filters", type=int, default=32)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--upsample", choices=["nearest", "transpose"], default="nearest")
    ap.add_argument("--layout", choices=["nchw", "channels_last"], default="nchw")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (intra-op)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--params-only", action="store_true", help="print the parameter count and exit")
    args = ap.parse_args(argv)
    if args.rows % 2**args.depth or args.cols % 2**args.depth:
        ap.error(f"{args.rows}x{args.cols} is not divisible by 2**depth = {2**args.depth}")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = UNet(args.filters, args.depth, args.upsample)
    params = sum(p.numel() for p in model.parameters())
    info = {"framework": "torch", "torch": torch.__version__, "mode": args.mode, "layout": args.layout,
            "threads": torch.get_num_threads(), "rows": args.rows, "cols": args.cols,
            "batch_size": args.batch_size, "filters": args.filters, "depth": args.depth,
            "upsample": args.upsample, "params": params}
    if args.params_only:
        print(json.dumps(info))
        return

    memory_format = torch.channels_last if args.layout == "channels_last" else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    shape = (args.batch_size, 1, args.rows, args.cols)
    images = torch.randn(shape).contiguous(memory_format=memory_format)
    masks = torch.bernoulli(torch.full(shape, 0.05)).contiguous(memory_format=memory_format)

    if args.mode == "train":
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-5, betas=(0.9, 0.999), eps=1e-7)

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = dice_loss(masks, model(images))
            loss.backward()
            optimizer.step()
            return loss.item()
    else:
        model.eval()

        def step():
            with torch.inference_mode():
                return float(model(images)[0, 0, 0, 0])

    measure(step, args, info, f"torch {args.mode} {args.rows}x{args.cols} batch {args.batch_size} {args.layout}, {info['threads']} threads")


if __name__ == "__main__":
    main()
