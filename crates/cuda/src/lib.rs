//! tessera-cuda: hand-written CUDA kernels for tessera, compiled at run time by NVRTC.
//!
//! The kernels live in `kernels/*.cu` (embedded with `include_str!`); [`kernels`] names every
//! kernel with one constant per entry point, and each module is compiled once per process and
//! device, for the device's compute capability, on first use ([`Gpu::function`]).
//!
//! This crate knows nothing of tessera's `Tensor`: its functions take and return raw device
//! buffers ([`Buffer`]) with their dimensions. `tessera-tensor`'s `cuda` feature builds its CUDA
//! storage on top of [`ops`]; [`norm`] holds the fused (SPADE) normalization and Adam kernels.
//!
//! Nothing here needs a CUDA toolkit to build: cudarc loads `libcuda` and `libnvrtc.so.13` at run
//! time. [`driver_present`] and [`nvrtc_present`] probe for them without panicking (cudarc panics
//! on the first call into a library it cannot load).
pub mod kernels;
pub mod norm;
pub mod ops;

pub use cudarc;

use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// A dense f32 buffer in device memory.
pub type Buffer = CudaSlice<f32>;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    #[error("the CUDA driver library (libcuda.so) could not be loaded: no NVIDIA driver here")]
    NoDriver,
    #[error("libnvrtc.so.13 could not be loaded: put its folder on LD_LIBRARY_PATH")]
    NoNvrtc,
    #[error("CUDA device {ordinal} does not exist ({count} devices)")]
    NoDevice { ordinal: usize, count: usize },
    #[error("CUDA driver error in {op}: {message}")]
    Driver { op: &'static str, message: String },
    #[error("NVRTC could not compile kernel module `{module}` for {arch}:\n{log}")]
    Compile {
        module: &'static str,
        arch: String,
        log: String,
    },
    #[error("{op}: buffers of different lengths {lens:?}")]
    LengthMismatch { op: &'static str, lens: Vec<usize> },
    #[error("{op}: {what} = {value} exceeds the kernels' 32-bit index range")]
    TooLarge {
        op: &'static str,
        what: &'static str,
        value: usize,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn driver_err(op: &'static str) -> impl Fn(cudarc::driver::DriverError) -> Error {
    move |e| Error::Driver {
        op,
        message: e.to_string(),
    }
}

/// Whether `libcuda` can be loaded (never panics).
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library; no CUDA call is made.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether `libnvrtc.so.13` can be loaded (never panics).
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the library; no NVRTC call is made.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Number of CUDA devices; 0 without a driver (or with a stub driver).
pub fn device_count() -> usize {
    if !driver_present() {
        return 0;
    }
    CudaContext::device_count().map_or(0, |n| n.max(0) as usize)
}

/// One device: its context, the single stream every tessera kernel runs on, and the kernel
/// modules compiled for it so far.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: &'static str,
    compute_capability: (i32, i32),
    name: String,
    sm_count: u32,
    modules: Mutex<HashMap<kernels::Module, Arc<CudaModule>>>,
    functions: Mutex<HashMap<&'static str, CudaFunction>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({}, {}, {})", self.ordinal(), self.name, self.arch)
    }
}

/// The process-wide handle of device `ordinal`, created on first use.
pub fn gpu(ordinal: usize) -> Result<Arc<Gpu>> {
    static GPUS: OnceLock<Mutex<HashMap<usize, Arc<Gpu>>>> = OnceLock::new();
    let mut gpus = GPUS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(g) = gpus.get(&ordinal) {
        return Ok(g.clone());
    }
    let g = Arc::new(Gpu::open(ordinal)?);
    gpus.insert(ordinal, g.clone());
    Ok(g)
}

impl Gpu {
    fn open(ordinal: usize) -> Result<Gpu> {
        if !driver_present() {
            return Err(Error::NoDriver);
        }
        let count = CudaContext::device_count().map_err(driver_err("cuDeviceGetCount"))?;
        if ordinal >= count.max(0) as usize {
            return Err(Error::NoDevice {
                ordinal,
                count: count.max(0) as usize,
            });
        }
        let ctx = CudaContext::new(ordinal).map_err(driver_err("cuCtxCreate"))?;
        // SAFETY: tessera runs every kernel and copy of a device on this one stream, so stream
        // order alone keeps each buffer's uses ordered and no cross-stream events are needed.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let (major, minor) = ctx
            .compute_capability()
            .map_err(driver_err("compute_capability"))?;
        let sm_count = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map_err(driver_err("cuDeviceGetAttribute"))? as u32;
        keep_freed_memory_pooled(&ctx);
        Ok(Gpu {
            name: ctx.name().unwrap_or_else(|_| "unknown".into()),
            // NVRTC's options take `&'static str`; one short string per opened device.
            arch: Box::leak(format!("compute_{major}{minor}").into_boxed_str()),
            compute_capability: (major, minor),
            ctx,
            stream,
            sm_count,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
        })
    }

    pub fn ordinal(&self) -> usize {
        self.ctx.ordinal()
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The NVRTC target, `compute_XY` for compute capability X.Y.
    pub fn arch(&self) -> &'static str {
        self.arch
    }
    pub fn sm_count(&self) -> u32 {
        self.sm_count
    }
    /// Whether the device has TF32 tensor cores (compute capability 8.0 and up).
    pub fn has_tf32(&self) -> bool {
        self.compute_capability.0 >= 8
    }
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }
    /// Waits for every queued kernel and copy.
    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(driver_err("synchronize"))
    }

    /// The kernel `name` of `module`, compiling the module for this device on first use.
    pub fn function(&self, kernel: kernels::Kernel) -> Result<CudaFunction> {
        if let Some(f) = lock(&self.functions).get(kernel.name) {
            return Ok(f.clone());
        }
        let module = {
            let mut modules = lock(&self.modules);
            match modules.get(&kernel.module) {
                Some(m) => m.clone(),
                None => {
                    let ptx = kernels::compile_ptx(kernel.module, self.arch)?;
                    let m = self
                        .ctx
                        .load_module(ptx)
                        .map_err(driver_err("cuModuleLoadData"))?;
                    modules.insert(kernel.module, m.clone());
                    m
                }
            }
        };
        let f = module
            .load_function(kernel.name)
            .map_err(driver_err("cuModuleGetFunction"))?;
        lock(&self.functions).insert(kernel.name, f.clone());
        Ok(f)
    }

    /// Host data to a new device buffer.
    pub fn upload(&self, data: &[f32]) -> Result<Buffer> {
        self.stream.clone_htod(data).map_err(driver_err("upload"))
    }
    /// A device buffer back to the host (waits for the queued work).
    pub fn download(&self, buf: &Buffer) -> Result<Vec<f32>> {
        self.stream.clone_dtoh(buf).map_err(driver_err("download"))
    }
    /// A new device buffer holding a copy of `buf`.
    pub fn duplicate(&self, buf: &Buffer) -> Result<Buffer> {
        self.stream.clone_dtod(buf).map_err(driver_err("duplicate"))
    }
    pub fn zeros(&self, len: usize) -> Result<Buffer> {
        self.stream
            .alloc_zeros(len)
            .map_err(driver_err("alloc_zeros"))
    }
    /// An uninitialised buffer, for kernels that write every element.
    pub(crate) fn alloc(&self, len: usize) -> Result<Buffer> {
        // SAFETY: callers pass the buffer to a kernel that writes all `len` elements before
        // anything reads it.
        unsafe { self.stream.alloc(len) }.map_err(driver_err("alloc"))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps freed device memory in the stream-ordered pool instead of returning it to the driver at
/// every synchronization, so the many short-lived buffers of a training step are reused.
/// Best effort: a device without memory pools keeps the default.
fn keep_freed_memory_pooled(ctx: &CudaContext) {
    use cudarc::driver::sys;
    if !ctx.has_async_alloc() {
        return;
    }
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let mut threshold: u64 = u64::MAX;
    // SAFETY: `pool` receives the device's default pool handle; the attribute value points at a
    // live u64 as CU_MEMPOOL_ATTR_RELEASE_THRESHOLD requires. Errors leave the default in place.
    unsafe {
        if ctx.bind_to_thread().is_ok()
            && sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device())
                == sys::CUresult::CUDA_SUCCESS
        {
            sys::cuMemPoolSetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&mut threshold as *mut u64).cast(),
            );
        }
    }
}
