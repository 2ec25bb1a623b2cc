//! Sampling on the device: greedy argmax over logits rows (no full-vocabulary copy to the host).
