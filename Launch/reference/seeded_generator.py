"""Our generator in Python: SeededGenerator (xoshiro256** seeded through SplitMix64, Sources/Random)
and Trainer.permutation (Sources/Training), so the Keras reference can see the training images in
exactly our order (keras_train.py --shuffle ours).

    python3 Launch/reference/seeded_generator.py    # self-check against values from the Swift side
"""
M = (1 << 64) - 1


def mix64(x):
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M
    return x ^ (x >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M


class SeededGenerator:
    def __init__(self, seed, path=None):
        if path is not None:
            h = mix64(seed ^ 0x6A09E667F3BCC908)
            for i, c in enumerate(path):
                h = mix64(h ^ mix64((c + (i + 1) * 0x9E3779B97F4A7C15) & M))
            seed = h
        s = []
        for _ in range(4):
            seed = (seed + 0x9E3779B97F4A7C15) & M
            s.append(mix64(seed))
        if not any(s):
            s[0] = 0x9E3779B97F4A7C15
        self.s = s

    def next(self):
        s0, s1, s2, s3 = self.s
        result = (rotl((s1 * 5) & M, 7) * 9) & M
        t = (s1 << 17) & M
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        self.s = [s0, s1, s2, s3]
        return result

    def int_in(self, lo, hi):
        """Uniform in [lo, hi] (Lemire's nearly divisionless method, as the Swift side)."""
        span = (hi - lo + 1) & M
        m = self.next() * span
        if (m & M) < span:
            threshold = ((1 << 64) - span) % span
            while (m & M) < threshold:
                m = self.next() * span
        return lo + (m >> 64)


def permutation(count, seed, epoch):
    """Trainer.permutation: Fisher-Yates over 0..<count on the (seed, 'SHUF', epoch) stream."""
    order = list(range(count))
    rng = SeededGenerator(seed, [0x53485546, epoch])
    for i in range(count - 1, 0, -1):
        j = rng.int_in(0, i)
        order[i], order[j] = order[j], order[i]
    return order


# Trainer.permutation(count: 12, seed: 3, epoch: 2), printed by the Swift side
# (TrainingTests.permutationMatchesThePythonPort holds the same list).
SWIFT_PERMUTATION_12_3_2 = [11, 3, 1, 9, 0, 2, 6, 8, 10, 5, 4, 7]

if __name__ == "__main__":
    got = permutation(12, 3, 2)
    print("permutation(12, seed 3, epoch 2):", got)
    if SWIFT_PERMUTATION_12_3_2 is not None:
        assert got == SWIFT_PERMUTATION_12_3_2, (got, SWIFT_PERMUTATION_12_3_2)
        print("matches the Swift side")
