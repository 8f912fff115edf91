//! Matrix products: matmul's gradients are matmuls.
use crate::{Result, Var};

impl Var {
    /// [m, k]·[k, n], or batched [b, m, k]·[b or none, k, n].
    pub fn matmul(&self, rhs: &Var) -> Result<Var> {
        let value = self.value().matmul(rhs.value())?;
        Ok(Var::from_op(
            "matmul",
            value,
            vec![self.clone(), rhs.clone()],
            |ctx, g| {
                let (a, b) = (&ctx.inputs[0], &ctx.inputs[1]);
                let last2 = |v: &Var| -> Result<Var> {
                    v.transpose(v.dims().len() - 2, v.dims().len() - 1)
                };
                Ok(vec![
                    ctx.grad_for(0, || g.matmul(&last2(b)?))?,
                    ctx.grad_for(1, || {
                        if a.dims().len() == 3 && b.dims().len() == 2 {
                            // One rhs shared by the batch: fold the batch into the rows.
                            let (bt, m, k) = (a.dims()[0], a.dims()[1], a.dims()[2]);
                            let n = g.dims()[2];
                            a.reshape([bt * m, k])?
                                .transpose(0, 1)?
                                .matmul(&g.reshape([bt * m, n])?)
                        } else {
                            last2(a)?.matmul(g)
                        }
                    })?,
                ])
            },
        ))
    }
    /// `x·weightᵀ + bias` like `F.linear`: x `[.., in]`, weight `[out, in]`, bias `[out]`.
    pub fn linear(&self, weight: &Var, bias: Option<&Var>) -> Result<Var> {
        let out = self.matmul(&weight.transpose(0, 1)?)?;
        match bias {
            Some(b) => out.add(b),
            None => Ok(out),
        }
    }
}
