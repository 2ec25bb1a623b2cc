//! Sampling: greedy, temperature, top-k, top-p, min-p, penalties, seeds, stop conditions.
