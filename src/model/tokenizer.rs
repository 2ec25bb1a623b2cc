//! Tokenizer from the GGUF vocabulary (`tokenizer.ggml.*`), built on the `tokenizers` crate.
