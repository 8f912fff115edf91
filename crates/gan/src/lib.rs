//! tessera-gan: GAN losses built on tessera-autograd, each twice differentiable where the
//! training recipe needs it (the gradient penalties).
