//! Where a tensor's storage lives, and the process-wide CUDA math setting.
use std::sync::atomic::{AtomicBool, Ordering};

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

impl std::fmt::Display for Device {
    /// `cpu` or `cuda:i`, the form [`Device::from_str`](std::str::FromStr) reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = String;
    /// `cpu`, `cuda` (device 0) or `cuda:i`, as PyTorch spells devices.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("unknown device {s:?} (expected cpu, cuda or cuda:N)")),
        }
    }
}

static CUDA_CONV_TF32: AtomicBool = AtomicBool::new(false);

/// Lets convolutions on CUDA devices (forward and both gradients) use the TF32 tensor cores:
/// operands rounded to a 10-bit mantissa, products accumulated in FP32, like PyTorch's
/// `torch.backends.cudnn.allow_tf32`. Off by default (PyTorch defaults to on), so that a GPU
/// run matches the CPU backend to FP32 rounding. Process-wide; no effect on the CPU or on GPUs
/// below compute capability 8.0, and accepted in builds without the `cuda` feature.
pub fn set_cuda_conv_tf32(allow: bool) {
    CUDA_CONV_TF32.store(allow, Ordering::Relaxed);
}

/// Whether CUDA convolutions may use TF32 (see [`set_cuda_conv_tf32`]).
pub fn cuda_conv_tf32() -> bool {
    CUDA_CONV_TF32.load(Ordering::Relaxed)
}

static CUDA_CONV_WINOGRAD: AtomicBool = AtomicBool::new(false);

/// Lets the weight gradients of 3×3, stride-1, undilated convolutions on CUDA devices run by
/// Winograd's F(4×4, 3×3) (a quarter of the multiplications, about one decimal digit of float32
/// less accurate, like the CPU backend's; cuDNN picks Winograd the same way). Off by default:
/// the kernels were written and checked without a GPU, and turn on by default once a GPU run
/// has measured them. Process-wide; no effect with TF32 convolutions, on the CPU, or in builds
/// without the `cuda` feature.
pub fn set_cuda_conv_winograd(allow: bool) {
    CUDA_CONV_WINOGRAD.store(allow, Ordering::Relaxed);
}

/// Whether CUDA convolutions' weight gradients may use Winograd (see [`set_cuda_conv_winograd`]).
pub fn cuda_conv_winograd() -> bool {
    CUDA_CONV_WINOGRAD.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::Device;

    #[test]
    fn cuda_conv_tf32_is_off_until_set() {
        // The only test of this binary that touches the process-wide setting.
        assert!(!super::cuda_conv_tf32());
        super::set_cuda_conv_tf32(true);
        assert!(super::cuda_conv_tf32());
        super::set_cuda_conv_tf32(false);
        assert!(!super::cuda_conv_tf32());
    }

    #[test]
    fn cuda_conv_winograd_is_off_until_set() {
        // The only test of this binary that touches the process-wide setting.
        assert!(!super::cuda_conv_winograd());
        super::set_cuda_conv_winograd(true);
        assert!(super::cuda_conv_winograd());
        super::set_cuda_conv_winograd(false);
        assert!(!super::cuda_conv_winograd());
    }

    #[test]
    fn devices_parse_as_pytorch_spells_them() {
        assert_eq!("cpu".parse(), Ok(Device::Cpu));
        assert_eq!("cuda".parse(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(Device::Cuda(3)));
        for bad in ["", "gpu", "cuda:", "cuda:x", "cuda:-1", "CPU"] {
            assert!(bad.parse::<Device>().is_err(), "{bad:?}");
        }
        for d in [Device::Cpu, Device::Cuda(2)] {
            assert_eq!(d.to_string().parse(), Ok(d));
        }
    }
}
