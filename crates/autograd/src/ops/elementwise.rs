//! Elementwise ops with broadcasting. Gradients of broadcast operands are summed back to their
//! shapes with `sum_to`.
use super::constant;
use crate::{Result, Var};
use tessera_tensor::{BinaryOp, CmpOp, Tensor, UnaryOp};

impl Var {
    pub fn neg(&self) -> Result<Var> {
        Ok(self.unary_op("neg", self.value().neg()?, |_, _, g| g.neg()))
    }
    pub fn exp(&self) -> Result<Var> {
        Ok(self.unary_op("exp", self.value().exp()?, |_, y, g| g.mul(y)))
    }
    pub fn log(&self) -> Result<Var> {
        Ok(self.unary_op("log", self.value().log()?, |x, _, g| g.div(x)))
    }
    pub fn sqrt(&self) -> Result<Var> {
        Ok(self.unary_op("sqrt", self.value().sqrt()?, |_, y, g| {
            g.div(y)?.mul_scalar(0.5)
        }))
    }
    /// x^(−1/2); d/dx = −½·y³.
    pub fn rsqrt(&self) -> Result<Var> {
        Ok(self.unary_op("rsqrt", self.value().rsqrt()?, |_, y, g| {
            g.mul(&y.powf(3.0)?)?.mul_scalar(-0.5)
        }))
    }
    pub fn abs(&self) -> Result<Var> {
        Ok(self.unary_op("abs", self.value().abs()?, |x, _, g| {
            g.mul(&constant(x.value().sign())?)
        }))
    }
    pub fn relu(&self) -> Result<Var> {
        Ok(self.unary_op("relu", self.value().relu()?, |x, _, g| {
            g.mul(&constant(x.value().cmp_scalar(CmpOp::Gt, 0.0))?)
        }))
    }
    pub fn leaky_relu(&self, slope: f32) -> Result<Var> {
        Ok(self.unary_op(
            "leaky_relu",
            self.value().leaky_relu(slope)?,
            move |x, _, g| {
                // 1 where x > 0, `slope` elsewhere: a constant, as the derivative of the mask is 0 a.e.
                let mask = x
                    .value()
                    .cmp_scalar(CmpOp::Gt, 0.0)?
                    .affine(1.0 - slope, slope)?;
                g.mul(&Var::constant(mask))
            },
        ))
    }
    pub fn tanh(&self) -> Result<Var> {
        Ok(self.unary_op("tanh", self.value().tanh()?, |_, y, g| {
            g.mul(&y.sqr()?.affine(-1.0, 1.0)?)
        }))
    }
    pub fn sigmoid(&self) -> Result<Var> {
        Ok(
            self.unary_op("sigmoid", self.value().sigmoid()?, |_, y, g| {
                g.mul(&y.mul(&y.affine(-1.0, 1.0)?)?)
            }),
        )
    }
    pub fn powf(&self, p: f32) -> Result<Var> {
        Ok(
            self.unary_op("powf", self.value().powf(p)?, move |x, _, g| {
                if p == 1.0 {
                    return Ok(g.clone());
                }
                if p == 0.0 {
                    // x⁰ is constant; the formula would give 0·x⁻¹ = NaN at x = 0.
                    return g.mul_scalar(0.0);
                }
                g.mul(&x.powf(p - 1.0)?.mul_scalar(p)?)
            }),
        )
    }
    pub fn sqr(&self) -> Result<Var> {
        self.mul(self)
    }
    pub fn clamp(&self, min: f32, max: f32) -> Result<Var> {
        Ok(
            self.unary_op("clamp", self.value().clamp(min, max)?, move |x, _, g| {
                // Strictly inside only: at a bound the minimum-norm subgradient 0, as for relu
                // at 0 and as PyTorch's clamp does.
                let inside = x
                    .value()
                    .cmp_scalar(CmpOp::Gt, min)?
                    .mul(&x.value().cmp_scalar(CmpOp::Lt, max)?)?;
                g.mul(&Var::constant(inside))
            }),
        )
    }
    /// x·mul + add.
    pub fn affine(&self, mul: f32, add: f32) -> Result<Var> {
        Ok(
            self.unary_op("affine", self.value().affine(mul, add)?, move |_, _, g| {
                g.mul_scalar(mul)
            }),
        )
    }
    pub fn add_scalar(&self, s: f32) -> Result<Var> {
        self.affine(1.0, s)
    }
    pub fn mul_scalar(&self, s: f32) -> Result<Var> {
        if s == 1.0 {
            return Ok(self.clone());
        }
        self.affine(s, 0.0)
    }

    fn binary_op(
        &self,
        rhs: &Var,
        op: BinaryOp,
        name: &'static str,
        rule: impl Fn(&Var, &Var, &Var, &Var, usize) -> Result<Var> + Send + Sync + 'static,
    ) -> Result<Var> {
        let value = self.value().binary(rhs.value(), op)?;
        Ok(Var::from_op(
            name,
            value,
            vec![self.clone(), rhs.clone()],
            move |ctx, g| {
                let (a, b, y) = (&ctx.inputs[0], &ctx.inputs[1], ctx.output);
                Ok(vec![
                    ctx.grad_for(0, || rule(a, b, y, g, 0)?.sum_to(a.shape()))?,
                    ctx.grad_for(1, || rule(a, b, y, g, 1)?.sum_to(b.shape()))?,
                ])
            },
        ))
    }
    pub fn add(&self, rhs: &Var) -> Result<Var> {
        self.binary_op(rhs, BinaryOp::Add, "add", |_, _, _, g, _| Ok(g.clone()))
    }
    pub fn sub(&self, rhs: &Var) -> Result<Var> {
        self.binary_op(rhs, BinaryOp::Sub, "sub", |_, _, _, g, i| {
            if i == 0 {
                Ok(g.clone())
            } else {
                g.neg()
            }
        })
    }
    pub fn mul(&self, rhs: &Var) -> Result<Var> {
        self.binary_op(rhs, BinaryOp::Mul, "mul", |a, b, _, g, i| {
            if i == 0 {
                g.mul(b)
            } else {
                g.mul(a)
            }
        })
    }
    /// a / b; d/db = −y / b.
    pub fn div(&self, rhs: &Var) -> Result<Var> {
        self.binary_op(rhs, BinaryOp::Div, "div", |_, b, y, g, i| {
            if i == 0 {
                g.div(b)
            } else {
                g.mul(y)?.div(b)?.neg()
            }
        })
    }
    /// a^b; d/da = b·a^(b−1), d/db = y·ln a. Where these give 0·∞ the gradient is 0, as in
    /// PyTorch: d/da where b = 0 (a⁰ is constant) and d/db where a = 0 and b ≥ 0.
    pub fn pow(&self, rhs: &Var) -> Result<Var> {
        self.binary_op(rhs, BinaryOp::Pow, "pow", |a, b, y, g, i| {
            let (av, bv) = (a.value(), b.value());
            let zero = Var::constant(Tensor::zeros([1], av.device())?);
            if i == 0 {
                let grad = g.mul(&b.mul(&a.pow(&b.add_scalar(-1.0)?)?)?)?;
                Var::where_cond(&bv.cmp_scalar(CmpOp::Eq, 0.0)?, &zero, &grad)
            } else {
                let grad = g.mul(&y.mul(&a.log()?)?)?;
                let zero_base = av
                    .cmp_scalar(CmpOp::Eq, 0.0)?
                    .mul(&bv.cmp_scalar(CmpOp::Ge, 0.0)?)?;
                Var::where_cond(&zero_base, &zero, &grad)
            }
        })
    }
    fn extremum(&self, rhs: &Var, op: BinaryOp, name: &'static str, wins: CmpOp) -> Result<Var> {
        // The winner takes the gradient; ties split it evenly, as PyTorch does.
        self.binary_op(rhs, op, name, move |a, b, _, g, i| {
            let (x, y) = if i == 0 { (a, b) } else { (b, a) };
            let win = x.value().cmp(y.value(), wins)?;
            let tie = x.value().cmp(y.value(), CmpOp::Eq)?.mul_scalar(0.5)?;
            g.mul(&constant(win.add(&tie))?)
        })
    }
    pub fn maximum(&self, rhs: &Var) -> Result<Var> {
        self.extremum(rhs, BinaryOp::Maximum, "maximum", CmpOp::Gt)
    }
    pub fn minimum(&self, rhs: &Var) -> Result<Var> {
        self.extremum(rhs, BinaryOp::Minimum, "minimum", CmpOp::Lt)
    }
    /// `cond` ≠ 0 selects `on_true`, else `on_false` (the mask is data, not differentiated).
    pub fn where_cond(cond: &Tensor, on_true: &Var, on_false: &Var) -> Result<Var> {
        let value = cond.where_cond(on_true.value(), on_false.value())?;
        let cond = cond.clone();
        Ok(Var::from_op(
            "where_cond",
            value,
            vec![on_true.clone(), on_false.clone()],
            move |ctx, g| {
                let zero = Var::constant(Tensor::zeros([1], g.value().device())?);
                let c = cond.clone();
                Ok(vec![
                    ctx.grad_for(0, || {
                        Var::where_cond(&c, g, &zero)?.sum_to(ctx.inputs[0].shape())
                    })?,
                    ctx.grad_for(1, || {
                        Var::where_cond(&c, &zero, g)?.sum_to(ctx.inputs[1].shape())
                    })?,
                ])
            },
        ))
    }
    /// 1.0 where `self op rhs` holds (not differentiable).
    pub fn cmp(&self, rhs: &Var, op: CmpOp) -> Result<Tensor> {
        Ok(self.value().cmp(rhs.value(), op)?)
    }
    /// Any elementwise map given as a [`UnaryOp`].
    pub fn unary(&self, op: UnaryOp) -> Result<Var> {
        match op {
            UnaryOp::Neg => self.neg(),
            UnaryOp::Exp => self.exp(),
            UnaryOp::Log => self.log(),
            UnaryOp::Sqrt => self.sqrt(),
            UnaryOp::Rsqrt => self.rsqrt(),
            UnaryOp::Abs => self.abs(),
            UnaryOp::Relu => self.relu(),
            UnaryOp::LeakyRelu(s) => self.leaky_relu(s),
            UnaryOp::Tanh => self.tanh(),
            UnaryOp::Sigmoid => self.sigmoid(),
            UnaryOp::Powf(p) => self.powf(p),
            UnaryOp::Clamp(lo, hi) => self.clamp(lo, hi),
            UnaryOp::Affine { mul, add } => self.affine(mul, add),
            UnaryOp::Sign | UnaryOp::CmpScalar(..) => constant(self.value().unary(op)),
        }
    }
}
