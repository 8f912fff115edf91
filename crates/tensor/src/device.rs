//! Where a tensor's storage lives.

/// A compute device. `Cuda(i)` is part of the API in every build; without the `cuda` feature
/// any attempt to place data there returns [`crate::Error::CudaNotBuilt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
    Cuda(usize),
}

impl Device {
    pub fn is_cpu(self) -> bool {
        matches!(self, Device::Cpu)
    }
}
