//! Helpers shared by the cross-crate tests: loading PyTorch fixtures and comparing tensors.
