//! NCHW ops. conv2d, conv2d_input_grad and conv2d_weight_grad are each linear in both operands,
//! and each one's gradients are the other two; pad2d, avg_pool2d and upsample2d pair with their
//! adjoints.
use crate::{Result, Var};
use tessera_tensor::{Conv2dParams, Interpolation, PadMode, Pool2dParams};

fn hw(v: &Var) -> [usize; 2] {
    let d = v.dims();
    [d[2], d[3]]
}

impl Var {
    pub fn pad2d(&self, pads: [usize; 4], mode: PadMode) -> Result<Var> {
        let value = self.value().pad2d(pads, mode)?;
        Ok(self.unary_op("pad2d", value, move |_, _, g| g.pad2d_adjoint(pads, mode)))
    }
    /// Adjoint of `pad2d` (sums padded entries back into their sources).
    pub fn pad2d_adjoint(&self, pads: [usize; 4], mode: PadMode) -> Result<Var> {
        let value = self.value().pad2d_adjoint(pads, mode)?;
        Ok(self.unary_op("pad2d_adjoint", value, move |_, _, g| g.pad2d(pads, mode)))
    }

    /// `F.conv2d(x, weight, bias, stride, padding, dilation)`.
    pub fn conv2d(&self, weight: &Var, bias: Option<&Var>, p: Conv2dParams) -> Result<Var> {
        let value = self.value().conv2d(weight.value(), None, p)?;
        let out = Var::from_op(
            "conv2d",
            value,
            vec![self.clone(), weight.clone()],
            move |ctx, g| {
                let (x, w) = (&ctx.inputs[0], &ctx.inputs[1]);
                Ok(vec![
                    ctx.grad_for(0, || g.conv2d_input_grad(w, hw(x), p))?,
                    ctx.grad_for(1, || x.conv2d_weight_grad(g, hw(w), p))?,
                ])
            },
        );
        match bias {
            None => Ok(out),
            Some(b) => out.add(&b.reshape([1, b.dims().iter().product::<usize>(), 1, 1])?),
        }
    }
    /// The input gradient of conv2d for output gradient `self` (a transposed convolution).
    pub fn conv2d_input_grad(
        &self,
        weight: &Var,
        in_hw: [usize; 2],
        p: Conv2dParams,
    ) -> Result<Var> {
        let value = self.value().conv2d_input_grad(weight.value(), in_hw, p)?;
        Ok(Var::from_op(
            "conv2d_input_grad",
            value,
            vec![self.clone(), weight.clone()],
            move |ctx, u| {
                let (g, w) = (&ctx.inputs[0], &ctx.inputs[1]);
                Ok(vec![
                    ctx.grad_for(0, || u.conv2d(w, None, p))?,
                    ctx.grad_for(1, || u.conv2d_weight_grad(g, hw(w), p))?,
                ])
            },
        ))
    }
    /// The weight gradient of conv2d for input `self` and output gradient `grad_out`.
    pub fn conv2d_weight_grad(
        &self,
        grad_out: &Var,
        khw: [usize; 2],
        p: Conv2dParams,
    ) -> Result<Var> {
        let value = self.value().conv2d_weight_grad(grad_out.value(), khw, p)?;
        Ok(Var::from_op(
            "conv2d_weight_grad",
            value,
            vec![self.clone(), grad_out.clone()],
            move |ctx, u| {
                let (x, g) = (&ctx.inputs[0], &ctx.inputs[1]);
                Ok(vec![
                    ctx.grad_for(0, || g.conv2d_input_grad(u, hw(x), p))?,
                    ctx.grad_for(1, || x.conv2d(u, None, p))?,
                ])
            },
        ))
    }

    pub fn avg_pool2d(&self, p: Pool2dParams) -> Result<Var> {
        let value = self.value().avg_pool2d(p)?;
        Ok(self.unary_op("avg_pool2d", value, move |x, _, g| {
            g.avg_pool2d_adjoint(hw(x), p)
        }))
    }
    pub fn avg_pool2d_adjoint(&self, in_hw: [usize; 2], p: Pool2dParams) -> Result<Var> {
        let value = self.value().avg_pool2d_adjoint(in_hw, p)?;
        Ok(self.unary_op("avg_pool2d_adjoint", value, move |_, _, g| g.avg_pool2d(p)))
    }
    pub fn upsample2d(&self, out_hw: [usize; 2], mode: Interpolation) -> Result<Var> {
        let value = self.value().upsample2d(out_hw, mode)?;
        if value.same_storage(self.value()) {
            // Resizing to the same size is the identity: no node, no copy.
            return Ok(self.clone());
        }
        Ok(self.unary_op("upsample2d", value, move |x, _, g| {
            g.upsample2d_adjoint(hw(x), mode)
        }))
    }
    pub fn upsample_nearest2d(&self, out_hw: [usize; 2]) -> Result<Var> {
        self.upsample2d(out_hw, Interpolation::Nearest)
    }
    pub fn upsample_bilinear2d(&self, out_hw: [usize; 2], align_corners: bool) -> Result<Var> {
        self.upsample2d(out_hw, Interpolation::Bilinear { align_corners })
    }
    pub fn upsample2d_adjoint(&self, in_hw: [usize; 2], mode: Interpolation) -> Result<Var> {
        let value = self.value().upsample2d_adjoint(in_hw, mode)?;
        Ok(self.unary_op("upsample2d_adjoint", value, move |x, _, g| {
            g.upsample2d(hw(x), mode)
        }))
    }
}
