//! The CPU backend: dense `Vec<f32>` storage, kernels on ndarray, rayon and `gemm`.
mod adam;
mod conv;
mod conv_direct;
mod conv_shifted;
mod conv_winograd;
mod elementwise;
mod gemm_f32;
mod layout;
mod maxpool;
mod norm;
pub mod pool;
mod reduce;
mod resample;
mod sum;
mod workers;

use crate::backend::*;
use crate::{Result, Shape};

pub(crate) use gemm_f32::gemm_f32;
pub use workers::run_with_workers_polling;

/// Below this many elements, kernels run on one thread: rayon's fork-join costs more than it saves.
pub(crate) const PAR_MIN: usize = 1 << 15;

#[derive(Clone, Debug, PartialEq)]
pub struct CpuStorage(pub Vec<f32>);

impl Drop for CpuStorage {
    fn drop(&mut self) {
        pool::give(std::mem::take(&mut self.0));
    }
}

impl CpuStorage {
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }
}

impl BackendStorage for CpuStorage {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn to_vec(&self) -> Result<Vec<f32>> {
        Ok(self.0.clone())
    }
    fn unary(&self, op: UnaryOp) -> Result<Self> {
        Ok(CpuStorage(elementwise::unary(&self.0, op)))
    }
    fn binary(
        &self,
        shape: &Shape,
        rhs: &Self,
        rhs_shape: &Shape,
        out_shape: &Shape,
        op: BinaryOp,
    ) -> Result<Self> {
        Ok(CpuStorage(elementwise::binary(
            &self.0, shape, &rhs.0, rhs_shape, out_shape, op,
        )))
    }
    fn where_cond(
        &self,
        shape: &Shape,
        t: (&Self, &Shape),
        f: (&Self, &Shape),
        out_shape: &Shape,
    ) -> Result<Self> {
        Ok(CpuStorage(elementwise::where_cond(
            &self.0,
            shape,
            (&t.0 .0, t.1),
            (&f.0 .0, f.1),
            out_shape,
        )))
    }
    fn reduce(&self, shape: &Shape, axes: &[usize], op: ReduceOp) -> Result<Self> {
        Ok(CpuStorage(reduce::reduce(&self.0, shape, axes, op)))
    }
    fn matmul(
        &self,
        rhs: &Self,
        batch: usize,
        rhs_batched: bool,
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<Self> {
        let mut out = if k == 0 {
            pool::take_zeroed(batch * m * n)
        } else {
            pool::take(batch * m * n)
        };
        for b in 0..batch {
            let lhs = &self.0[b * m * k..(b + 1) * m * k];
            let r = if rhs_batched {
                &rhs.0[b * k * n..(b + 1) * k * n]
            } else {
                &rhs.0[..]
            };
            let dst = &mut out[b * m * n..(b + 1) * m * n];
            // SAFETY: row-major dense buffers of the sizes given: lhs m×k, rhs k×n, dst m×n.
            unsafe {
                gemm_f32(
                    m,
                    n,
                    k,
                    dst.as_mut_ptr(),
                    n as isize,
                    1,
                    false,
                    lhs.as_ptr(),
                    k as isize,
                    1,
                    r.as_ptr(),
                    n as isize,
                    1,
                    true,
                )
            };
        }
        Ok(CpuStorage(out))
    }
    fn permute(&self, shape: &Shape, perm: &[usize]) -> Result<Self> {
        Ok(CpuStorage(layout::permute(&self.0, shape, perm)))
    }
    fn broadcast_to(&self, shape: &Shape, out_shape: &Shape) -> Result<Self> {
        Ok(CpuStorage(layout::broadcast_to(&self.0, shape, out_shape)))
    }
    fn narrow(&self, shape: &Shape, axis: usize, start: usize, len: usize) -> Result<Self> {
        Ok(CpuStorage(layout::narrow(&self.0, shape, axis, start, len)))
    }
    fn pad_axis(&self, shape: &Shape, axis: usize, before: usize, after: usize) -> Result<Self> {
        Ok(CpuStorage(layout::pad_axis(
            &self.0, shape, axis, before, after,
        )))
    }
    fn concat(parts: &[(&Self, &Shape)], axis: usize) -> Result<Self> {
        let parts: Vec<(&[f32], &Shape)> =
            parts.iter().map(|(s, sh)| (s.0.as_slice(), *sh)).collect();
        Ok(CpuStorage(layout::concat(&parts, axis)))
    }
    fn pad2d(&self, shape: [usize; 4], pads: [usize; 4], mode: PadMode) -> Result<Self> {
        Ok(CpuStorage(resample::pad2d(&self.0, shape, pads, mode)))
    }
    fn pad2d_adjoint(&self, shape: [usize; 4], pads: [usize; 4], mode: PadMode) -> Result<Self> {
        Ok(CpuStorage(resample::pad2d_adjoint(
            &self.0, shape, pads, mode,
        )))
    }
    fn conv2d(
        &self,
        shape: [usize; 4],
        weight: &Self,
        wshape: [usize; 4],
        p: Conv2dParams,
    ) -> Result<Self> {
        Ok(CpuStorage(conv::conv2d(
            &self.0, shape, &weight.0, wshape, p,
        )))
    }
    fn conv2d_input_grad(
        &self,
        gshape: [usize; 4],
        weight: &Self,
        wshape: [usize; 4],
        in_hw: [usize; 2],
        p: Conv2dParams,
    ) -> Result<Self> {
        Ok(CpuStorage(conv::conv2d_input_grad(
            &self.0, gshape, &weight.0, wshape, in_hw, p,
        )))
    }
    fn conv2d_weight_grad(
        &self,
        shape: [usize; 4],
        grad_out: &Self,
        gshape: [usize; 4],
        khw: [usize; 2],
        p: Conv2dParams,
    ) -> Result<Self> {
        Ok(CpuStorage(conv::conv2d_weight_grad(
            &self.0,
            shape,
            &grad_out.0,
            gshape,
            khw,
            p,
        )))
    }
    fn avg_pool2d(&self, shape: [usize; 4], p: Pool2dParams) -> Result<Self> {
        Ok(CpuStorage(resample::avg_pool2d(&self.0, shape, p)))
    }
    fn avg_pool2d_adjoint(
        &self,
        shape: [usize; 4],
        in_hw: [usize; 2],
        p: Pool2dParams,
    ) -> Result<Self> {
        Ok(CpuStorage(resample::avg_pool2d_adjoint(
            &self.0, shape, in_hw, p,
        )))
    }
    fn max_pool2d(&self, shape: [usize; 4], p: MaxPool2dParams) -> Result<(Self, Self)> {
        let (values, offsets) = maxpool::max_pool2d(&self.0, shape, p);
        Ok((CpuStorage(values), CpuStorage(offsets)))
    }
    fn max_pool2d_scatter(
        &self,
        shape: [usize; 4],
        indices: &Self,
        in_hw: [usize; 2],
        p: MaxPool2dParams,
    ) -> Result<Self> {
        Ok(CpuStorage(maxpool::max_pool2d_scatter(
            &self.0, shape, &indices.0, in_hw, p,
        )))
    }
    fn max_pool2d_gather(
        &self,
        shape: [usize; 4],
        indices: &Self,
        out_hw: [usize; 2],
        p: MaxPool2dParams,
    ) -> Result<Self> {
        Ok(CpuStorage(maxpool::max_pool2d_gather(
            &self.0, shape, &indices.0, out_hw, p,
        )))
    }
    fn upsample2d(
        &self,
        shape: [usize; 4],
        out_hw: [usize; 2],
        mode: Interpolation,
    ) -> Result<Self> {
        Ok(CpuStorage(resample::upsample2d(
            &self.0, shape, out_hw, mode,
        )))
    }
    fn upsample2d_adjoint(
        &self,
        shape: [usize; 4],
        in_hw: [usize; 2],
        mode: Interpolation,
    ) -> Result<Self> {
        Ok(CpuStorage(resample::upsample2d_adjoint(
            &self.0, shape, in_hw, mode,
        )))
    }
    fn norm_stats(&self, shape: [usize; 4], instance: bool, eps: f32) -> Result<(Self, Self)> {
        let (mean, rstd) = norm::norm_stats(&self.0, shape, instance, eps);
        Ok((CpuStorage(mean), CpuStorage(rstd)))
    }
    fn norm_modulate(
        &self,
        shape: [usize; 4],
        mean: &Self,
        rstd: &Self,
        instance: bool,
        m: NormModulation<&Self>,
    ) -> Result<Self> {
        Ok(CpuStorage(norm::norm_modulate(
            &self.0,
            shape,
            &mean.0,
            &rstd.0,
            instance,
            m.map(|t| t.0.as_slice()),
        )))
    }
    fn adam_step(
        &self,
        grad: &Self,
        m: &Self,
        v: &Self,
        s: AdamStep,
    ) -> Result<(Self, Self, Self)> {
        let [p, m, v] = adam::adam_step(&self.0, &grad.0, &m.0, &v.0, s);
        Ok((CpuStorage(p), CpuStorage(m), CpuStorage(v)))
    }
    fn norm_backward(
        &self,
        x: &Self,
        shape: [usize; 4],
        mean: &Self,
        rstd: &Self,
        instance: bool,
        gamma: Option<&Self>,
    ) -> Result<(Self, Option<Self>)> {
        let (dx, dgamma) = norm::norm_backward(
            &self.0,
            &x.0,
            shape,
            &mean.0,
            &rstd.0,
            instance,
            gamma.map(|g| g.0.as_slice()),
        );
        Ok((CpuStorage(dx), dgamma.map(CpuStorage)))
    }
}
