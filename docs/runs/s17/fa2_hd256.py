# torch's FlashAttention-2 kernel on the bench's hd256 row (B=4 H=16 S=4096 bf16 causal), for ncu
import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend

q, k, v = (torch.randn(4, 16, 4096, 256, device="cuda", dtype=torch.bfloat16) for _ in range(3))
with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
    for _ in range(3):
        F.scaled_dot_product_attention(q, k, v, is_causal=True)
torch.cuda.synchronize()
