"""Router, balance loss and upcycling of LLaVA-MoD's sparse student (mmkd.models.surgery.moe_upcycling)."""
import math

import pytest
import torch
from torch import nn

from mmkd.models.surgery import (
    SparseMoEBlock,
    load_balancing_loss,
    moe_layer_indices,
    pop_moe_aux_loss,
    route_tokens,
    upcycle_to_moe,
)

LOGITS = [[2.0, 1.0, 0.0, -1.0],
          [0.0, 3.0, 0.5, 0.7],
          [1.0, 0.8, 2.0, 0.0]]


def _softmax(row):
    ex = [math.exp(v) for v in row]
    return [v / sum(ex) for v in ex]


def _naive_topk(row, k):
    order = sorted(range(len(row)), key=lambda i: -row[i])  # LOGITS has no ties
    return order[:k]


def test_router_topk_and_renormalised_weights_golden():
    probs, weights, indices = route_tokens(torch.tensor(LOGITS), top_k=2)
    for t, row in enumerate(LOGITS):
        p = _softmax(row)
        top = _naive_topk(p, 2)
        assert indices[t].tolist() == top
        denom = p[top[0]] + p[top[1]]
        assert weights[t].tolist() == pytest.approx([p[top[0]] / denom, p[top[1]] / denom], abs=1e-6)
        assert probs[t].tolist() == pytest.approx(p, abs=1e-6)
    # Hand-checked numbers for token 0: softmax([2,1,0,-1]) top-2 = e^2/(e^2+e^1), e/(e^2+e)
    assert weights[0, 0].item() == pytest.approx(math.e / (math.e + 1), abs=1e-6)
    assert weights[0, 1].item() == pytest.approx(1 / (math.e + 1), abs=1e-6)
    _, raw, _ = route_tokens(torch.tensor(LOGITS), top_k=2, normalize=False)
    assert raw[0].tolist() == pytest.approx(_softmax(LOGITS[0])[:2], abs=1e-6)


@pytest.mark.parametrize('count', ['top1', 'topk'])
def test_load_balancing_loss_golden(count):
    num_experts, k = 4, 2
    probs, _, indices = route_tokens(torch.tensor(LOGITS), top_k=k)
    tokens = len(LOGITS)
    counted = [0.0] * num_experts
    mean_p = [0.0] * num_experts
    for row in LOGITS:
        p = _softmax(row)
        top = _naive_topk(p, k)
        for j in (top[:1] if count == 'top1' else top):
            counted[j] += 1.0
        for i in range(num_experts):
            mean_p[i] += p[i] / tokens
    expected = num_experts * sum(counted[i] / tokens * mean_p[i] for i in range(num_experts))
    got = load_balancing_loss(probs, indices, num_experts, count=count)
    assert got.item() == pytest.approx(expected, abs=1e-6)
    # token firsts are experts 0, 1, 2: f = (1/3, 1/3, 1/3, 0) for 'top1'
    if count == 'top1':
        assert counted == [1.0, 1.0, 1.0, 0.0]


def test_balanced_router_gives_one():
    # Uniform probabilities, first choices spread evenly -> E * sum(1/E * 1/E) = 1.
    probs = torch.full((4, 4), 0.25)
    indices = torch.tensor([[0, 1], [1, 2], [2, 3], [3, 0]])
    assert load_balancing_loss(probs, indices, 4).item() == pytest.approx(1.0)
    assert load_balancing_loss(probs, indices, 4, count='topk').item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match='balance_count'):
        load_balancing_loss(probs, indices, 4, count='top3')


def test_block_matches_naive_per_token_mixture():
    torch.manual_seed(0)
    experts = [nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 6)) for _ in range(3)]
    block = SparseMoEBlock(experts, hidden_size=6, top_k=2)
    nn.init.normal_(block.router.weight, std=1.0)  # decisive, distinct routes
    x = torch.randn(2, 4, 6)
    out = block(x)
    flat = x.reshape(-1, 6)
    for t in range(flat.shape[0]):
        logits = (block.router.weight @ flat[t]).tolist()
        p = _softmax(logits)
        top = _naive_topk(p, 2)
        denom = p[top[0]] + p[top[1]]
        want = sum(p[j] / denom * experts[j](flat[t]) for j in top)
        assert torch.allclose(out.reshape(-1, 6)[t], want, atol=1e-5)
    aux = pop_moe_aux_loss(block)
    assert aux is not None and aux.requires_grad
    assert pop_moe_aux_loss(block) is None  # popped
    block.eval()
    block(x)
    assert pop_moe_aux_loss(block) is None  # no balance loss outside training


def test_layer_selection():
    assert moe_layer_indices(6, 'sparse') == [0, 2, 4]
    assert moe_layer_indices(5, 'all') == [0, 1, 2, 3, 4]
    assert moe_layer_indices(6, 'second_half') == [3, 4, 5]
    assert moe_layer_indices(6, [4, 1]) == [1, 4]
    with pytest.raises(ValueError, match='layers'):
        moe_layer_indices(6, 'every_third')
    with pytest.raises(ValueError, match='indices must be in'):
        moe_layer_indices(6, [7])


def _tiny_qwen2(layers=3):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(vocab_size=40, hidden_size=16, intermediate_size=24, num_hidden_layers=layers,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32,
                      attn_implementation='eager')
    return Qwen2ForCausalLM(cfg)


def test_upcycled_qwen2_reproduces_dense_output():
    torch.manual_seed(0)
    model = _tiny_qwen2(layers=4).eval()
    ids = torch.randint(0, 40, (2, 9))
    dense = model(ids).logits
    dense_mlp_w = model.model.layers[0].mlp.down_proj.weight.clone()
    replaced = upcycle_to_moe(model, num_experts=4, top_k=2, layers='sparse')
    assert replaced == [0, 2]
    assert isinstance(model.model.layers[0].mlp, SparseMoEBlock)
    assert not isinstance(model.model.layers[1].mlp, SparseMoEBlock)
    block = model.model.layers[2].mlp
    assert block.num_experts == 4 and block.top_k == 2
    for e in model.model.layers[0].mlp.experts:
        assert torch.equal(e.down_proj.weight, dense_mlp_w)
    # Experts are independent copies, not shared parameters.
    assert model.model.layers[0].mlp.experts[0].down_proj.weight.data_ptr() != \
        model.model.layers[0].mlp.experts[1].down_proj.weight.data_ptr()
    sparse = model(ids).logits
    assert torch.allclose(sparse, dense, atol=1e-5)
    # Training: the balance loss of both MoE layers is collected and reaches the routers.
    model.train()
    pop_moe_aux_loss(model)
    out = model(ids).logits
    aux = pop_moe_aux_loss(model)
    (out.square().mean() + 0.01 * aux).backward()
    assert model.model.layers[0].mlp.router.weight.grad is not None
    assert model.model.layers[2].mlp.experts[3].up_proj.weight.grad is not None
    with pytest.raises(ValueError, match='already holds an MoE'):
        upcycle_to_moe(model, layers=[0])


def test_upcycle_finds_llm_layers_next_to_a_vision_tower():
    torch.manual_seed(0)

    class ClipLikeLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = nn.Sequential()
            self.mlp.fc1, self.mlp.fc2 = nn.Linear(4, 4), nn.Linear(4, 4)

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.vision = nn.Module()
            self.vision.layers = nn.ModuleList([ClipLikeLayer(), ClipLikeLayer()])
            self.llm = _tiny_qwen2(layers=2)

    model = Wrapper()
    assert upcycle_to_moe(model, num_experts=2, top_k=1, layers='all') == [0, 1]
    assert not any(isinstance(m.mlp, SparseMoEBlock) for m in model.vision.layers)
    with pytest.raises(ValueError, match='decoder_layers'):
        upcycle_to_moe(model, decoder_layers='llm.model.nothing')
    with pytest.raises(ValueError, match='top_k'):
        upcycle_to_moe(_tiny_qwen2(), num_experts=2, top_k=3)


def test_upcycled_llama_reproduces_dense_output():
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(1)
    cfg = LlamaConfig(vocab_size=30, hidden_size=16, intermediate_size=20, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32)
    model = LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 30, (1, 6))
    dense = model(ids).logits
    upcycle_to_moe(model, num_experts=3, top_k=2, layers='all')
    assert torch.allclose(model(ids).logits, dense, atol=1e-5)
