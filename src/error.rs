//! The top-level error: each layer's error, and the exit status it maps to
//! (contracts §8: 1 for wrong input, 2 for trouble).
