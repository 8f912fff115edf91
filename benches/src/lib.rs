//! Benchmarks of tessera against PyTorch on the same machine; see benches/benches/.
