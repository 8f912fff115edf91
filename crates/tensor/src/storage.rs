//! Device-tagged storage: one variant per backend. Matching on it is the only place the
//! device of an op is chosen; a new backend adds a variant and the compiler lists every
//! dispatch site that must learn about it.
use crate::backend::BackendStorage;
use crate::cpu::CpuStorage;
use crate::{Device, Result};

#[derive(Clone, Debug)]
pub enum Storage {
    Cpu(CpuStorage),
    #[cfg(feature = "cuda")]
    Cuda(crate::cuda::CudaStorage),
}

impl Storage {
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => s.device(),
        }
    }
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(s) => s.len(),
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => s.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        match self {
            Storage::Cpu(s) => s.to_vec(),
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => s.to_vec(),
        }
    }
    /// Places host data on `device`.
    pub fn from_vec(data: Vec<f32>, device: Device, op: &'static str) -> Result<Storage> {
        match device {
            Device::Cpu => Ok(Storage::Cpu(CpuStorage(data))),
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => Ok(Storage::Cuda(crate::cuda::CudaStorage::from_host(
                &data, i, op,
            )?)),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => Err(crate::Error::CudaNotBuilt { op, device }),
        }
    }
}
