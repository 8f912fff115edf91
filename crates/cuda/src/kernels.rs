//! The kernel sources and one constant per kernel entry point.
//!
//! Each [`Module`] is one `.cu` file under `kernels/`, compiled with `common.cuh` prepended. A
//! [`Kernel`] constant names an `extern "C" __global__` function of its module; the test
//! `kernels_compile` checks that every constant names an entry of the compiled PTX, so the Rust
//! and CUDA names cannot drift apart.
use crate::{Error, Result};
use cudarc::nvrtc::{CompileOptions, Ptx};

/// One kernel source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Module {
    Elementwise,
    Reduce,
    Gemm,
    Spatial,
    Norm,
    Winograd,
}

impl Module {
    pub const ALL: [Module; 6] = [
        Module::Elementwise,
        Module::Reduce,
        Module::Gemm,
        Module::Spatial,
        Module::Norm,
        Module::Winograd,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Module::Elementwise => "elementwise",
            Module::Reduce => "reduce",
            Module::Gemm => "gemm",
            Module::Spatial => "spatial",
            Module::Norm => "norm",
            Module::Winograd => "winograd",
        }
    }
    /// The module's full source: the shared prelude followed by its `.cu` file.
    pub fn source(self) -> String {
        let body = match self {
            Module::Elementwise => include_str!("../kernels/elementwise.cu"),
            Module::Reduce => include_str!("../kernels/reduce.cu"),
            Module::Gemm => include_str!("../kernels/gemm.cu"),
            Module::Spatial => include_str!("../kernels/spatial.cu"),
            Module::Norm => include_str!("../kernels/norm.cu"),
            Module::Winograd => include_str!("../kernels/winograd.cu"),
        };
        format!("{}\n{body}", include_str!("../kernels/common.cuh"))
    }
}

/// A kernel entry point: its module and its `extern "C"` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    pub module: Module,
    pub name: &'static str,
}

macro_rules! kernels {
    ($($konst:ident = $module:ident :: $name:literal;)*) => {
        $(pub const $konst: Kernel = Kernel { module: Module::$module, name: $name };)*
        /// Every kernel, for the compile check.
        pub const ALL: &[Kernel] = &[$($konst),*];
    };
}

kernels! {
    UNARY = Elementwise::"tessera_unary";
    BINARY = Elementwise::"tessera_binary";
    BINARY_SAME = Elementwise::"tessera_binary_same";
    WHERE = Elementwise::"tessera_where";
    COPY_STRIDED = Elementwise::"tessera_copy_strided";
    FILL = Elementwise::"tessera_fill";
    PAD2D = Elementwise::"tessera_pad2d";
    PAD2D_ADJOINT = Elementwise::"tessera_pad2d_adjoint";
    REDUCE = Reduce::"tessera_reduce";
    MATMUL_128 = Gemm::"tessera_matmul_128";
    MATMUL_64 = Gemm::"tessera_matmul_64";
    MATMUL_32 = Gemm::"tessera_matmul_32";
    CONV2D_FWD_128 = Gemm::"tessera_conv2d_fwd_128";
    CONV2D_FWD_64 = Gemm::"tessera_conv2d_fwd_64";
    CONV2D_FWD_32 = Gemm::"tessera_conv2d_fwd_32";
    CONV2D_DGRAD_128 = Gemm::"tessera_conv2d_dgrad_128";
    CONV2D_DGRAD_64 = Gemm::"tessera_conv2d_dgrad_64";
    CONV2D_DGRAD_32 = Gemm::"tessera_conv2d_dgrad_32";
    CONV2D_WGRAD_128 = Gemm::"tessera_conv2d_wgrad_128";
    CONV2D_WGRAD_64 = Gemm::"tessera_conv2d_wgrad_64";
    CONV2D_WGRAD_32 = Gemm::"tessera_conv2d_wgrad_32";
    CONV2D_FWD_TF32_128 = Gemm::"tessera_conv2d_fwd_tf32_128";
    CONV2D_FWD_TF32_64 = Gemm::"tessera_conv2d_fwd_tf32_64";
    CONV2D_FWD_TF32_32 = Gemm::"tessera_conv2d_fwd_tf32_32";
    CONV2D_DGRAD_TF32_128 = Gemm::"tessera_conv2d_dgrad_tf32_128";
    CONV2D_DGRAD_TF32_64 = Gemm::"tessera_conv2d_dgrad_tf32_64";
    CONV2D_DGRAD_TF32_32 = Gemm::"tessera_conv2d_dgrad_tf32_32";
    CONV2D_WGRAD_TF32_128 = Gemm::"tessera_conv2d_wgrad_tf32_128";
    CONV2D_WGRAD_TF32_64 = Gemm::"tessera_conv2d_wgrad_tf32_64";
    CONV2D_WGRAD_TF32_32 = Gemm::"tessera_conv2d_wgrad_tf32_32";
    WINOGRAD_WGRAD_GEMM_128 = Gemm::"tessera_winograd_wgrad_gemm_128";
    WINOGRAD_WGRAD_GEMM_64 = Gemm::"tessera_winograd_wgrad_gemm_64";
    WINOGRAD_WGRAD_GEMM_32 = Gemm::"tessera_winograd_wgrad_gemm_32";
    WINOGRAD_WGRAD_INPUT = Winograd::"tessera_winograd_wgrad_input";
    WINOGRAD_WGRAD_GRAD = Winograd::"tessera_winograd_wgrad_grad";
    WINOGRAD_WGRAD_WEIGHTS = Winograd::"tessera_winograd_wgrad_weights";
    AVG_POOL2D = Spatial::"tessera_avg_pool2d";
    AVG_POOL2D_ADJOINT = Spatial::"tessera_avg_pool2d_adjoint";
    MAX_POOL2D = Spatial::"tessera_max_pool2d";
    MAX_POOL2D_SCATTER = Spatial::"tessera_max_pool2d_scatter";
    MAX_POOL2D_GATHER = Spatial::"tessera_max_pool2d_gather";
    UPSAMPLE2D = Spatial::"tessera_upsample2d";
    UPSAMPLE2D_ADJOINT = Spatial::"tessera_upsample2d_adjoint";
    NORM_STATS_PARTIAL = Norm::"tessera_norm_stats_partial";
    NORM_STATS_FINISH = Norm::"tessera_norm_stats_finish";
    NORM_MODULATE = Norm::"tessera_norm_modulate";
    NORM_BWD_PARTIAL = Norm::"tessera_norm_bwd_partial";
    NORM_BWD_APPLY = Norm::"tessera_norm_bwd_apply";
    ADAM = Norm::"tessera_adam";
}

/// Flags every compilation uses: full-precision division and square root (the CPU backend is the
/// reference), C++17 for the templates.
const BASE_OPTIONS: [&str; 1] = ["--std=c++17"];

/// Compiles `module` to PTX for `arch` (`compute_XY`).
pub fn compile_ptx(module: Module, arch: &'static str) -> Result<Ptx> {
    if !crate::nvrtc_present() {
        return Err(Error::NoNvrtc);
    }
    let opts = CompileOptions {
        arch: Some(arch),
        options: BASE_OPTIONS.iter().map(|s| s.to_string()).collect(),
        name: Some(format!("{}.cu", module.name())),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(module.source(), opts).map_err(|e| Error::Compile {
        module: module.name(),
        arch: arch.to_string(),
        log: match e {
            cudarc::nvrtc::CompileError::CompileError { log, .. } => {
                log.to_string_lossy().into_owned()
            }
            other => other.to_string(),
        },
    })
}

/// Compiles `module` all the way to a cubin for `sm` (like `sm_90`) with ptxas reporting its
/// register use, and with any register spill turned into a compile error. Returns ptxas's report.
/// This needs only libnvrtc (it embeds ptxas), not a GPU.
pub fn check_registers(module: Module, sm: &str) -> Result<String> {
    use cudarc::nvrtc::result;
    use std::ffi::CString;
    if !crate::nvrtc_present() {
        return Err(Error::NoNvrtc);
    }
    let fail = |log: String| Error::Compile {
        module: module.name(),
        arch: sm.to_string(),
        log,
    };
    let src = CString::new(module.source()).map_err(|e| fail(e.to_string()))?;
    let name = CString::new(format!("{}.cu", module.name())).expect("module names have no NUL");
    let prog = result::create_program(&src, Some(&name)).map_err(|e| fail(e.to_string()))?;
    let mut options: Vec<String> = BASE_OPTIONS.iter().map(|s| s.to_string()).collect();
    options.extend([
        format!("--gpu-architecture={sm}"),
        "--ptxas-options=-v".into(),
        // Passed one by one: ptxas rejects a comma-joined list.
        "--ptxas-options=--warn-on-spills".into(),
        "--ptxas-options=--warning-as-error".into(),
    ]);
    // SAFETY: `prog` is a live program created above and destroyed exactly once below; the log
    // is read before destruction.
    unsafe {
        let compiled = result::compile_program(prog, &options);
        let log = result::get_program_log(prog)
            .map(|raw| {
                let bytes: Vec<u8> = raw
                    .iter()
                    .take_while(|&&c| c != 0)
                    .map(|&c| c as u8)
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            })
            .unwrap_or_default();
        let _ = result::destroy_program(prog);
        compiled.map_err(|e| fail(format!("{e:?}\n{log}")))?;
        Ok(log)
    }
}
