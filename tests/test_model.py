"""Symmetries of the network itself: Wigner-D construction, rotation equivariance, invariances."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from e3nn import o3

from eqv2_calc.errors import ConfigError
from eqv2_calc.model import EquiformerV2, EquiformerV2Config, StressHeadConfig
from eqv2_calc.model.so3 import edge_wigner, m_primary_lm
from eqv2_calc.potential import Normalizer, Potential
from seeded_weights import seeded_tensor

TEST_CONFIG = dict(
    num_layers=2, sphere_channels=16, attn_hidden_channels=16, num_heads=2, attn_alpha_channels=8,
    attn_value_channels=8, ffn_hidden_channels=16, edge_channels=16, lmax_list=[3], mmax_list=[2],
    grid_resolution=32, max_radius=5.0, max_neighbors=30, norm_type="layer_norm_sh",
    enforce_max_neighbors_strictly=False, stress_head=StressHeadConfig(), layout="hydra",
)


def seeded_potential(**overrides) -> Potential:
    """A small float64 network whose every weight is drawn (deterministically) from its name.

    The S2 activations are rotation-equivariant only up to the quadrature error of their grids
    (EquiformerV2's design); with these O(1) random weights a 32x32 grid and float64 push it to
    ~1e-7, so the symmetry tests below check our geometry, not the grid.
    """
    model = EquiformerV2(EquiformerV2Config(**{**TEST_CONFIG, **overrides}))
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.from_numpy(seeded_tensor(name, tuple(param.shape))))
    normalizers = {"energy": Normalizer(0.3, 2.0), "forces": Normalizer(0.0, 3.0)}
    return Potential(model, normalizers).eval().double()


def evaluate(potential: Potential, atoms: Atoms) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = potential(potential.make_graph(atoms))
    return {k: v.double().numpy() for k, v in out.items()}


@pytest.fixture(scope="module")
def potential() -> Potential:
    return seeded_potential()


@pytest.fixture
def crystal() -> Atoms:
    atoms = bulk("NaCl", "rocksalt", a=5.0) * (2, 1, 1)
    atoms.set_cell(atoms.cell[:] + np.array([[0.0, 0.3, 0.1], [0.2, 0.0, 0.0], [0.0, 0.1, 0.0]]), scale_atoms=True)
    atoms.rattle(0.1, seed=4)
    return atoms


def test_edge_wigner_matches_e3nn_and_aligns_edges() -> None:
    lmax, mmax = 4, 2
    vec = torch.randn(50, 3, dtype=torch.float64)
    vec[0] = torch.tensor([0.0, 2.0, 0.0])  # along the polar axis
    vec[1] = torch.tensor([0.0, -1.5, 0.0])
    to_edge, from_edge = edge_wigner(vec, lmax, mmax)
    sh = o3.spherical_harmonics(list(range(lmax + 1)), vec, normalize=True)
    rotated = torch.einsum("eij,ej->ei", to_edge, sh)
    m_zero = torch.tensor([m == 0 for _, m in m_primary_lm(lmax, mmax)])
    # the edge direction's harmonics have only m = 0 components in the edge frame
    assert rotated[:, ~m_zero].abs().max() < 1e-12
    # to_edge rows are rows of e3nn's Wigner-D of a rotation taking the edge onto +y
    for l in range(lmax + 1):
        block = to_edge[:, [r for r, (lr, _) in enumerate(m_primary_lm(lmax, mmax)) if lr == l], l * l : (l + 1) ** 2]
        gram = block @ block.transpose(1, 2)
        assert torch.allclose(gram, torch.eye(gram.shape[1], dtype=gram.dtype).expand_as(gram), atol=1e-12)
    assert from_edge.shape == (50, (lmax + 1) ** 2, len(m_primary_lm(lmax, mmax)))


@pytest.mark.parametrize("lmax,mmax,shape", [(4, 2, (18, 18)), (6, 3, (18, 18)), (3, 3, (8, 9)), (2, 1, (8, 24))])
def test_separable_and_dense_sphere_grids_agree(lmax: int, mmax: int, shape: tuple[int, int],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Either form of the S2 grid projections (picked by cost) gives the same S2 activation and grid values, up to
    the float32 round-off of the factors (O(1) inputs)."""
    from eqv2_calc.model import activations
    from eqv2_calc.model.so3 import s2_grid_factors

    factors = s2_grid_factors(lmax, mmax, shape)
    grids = {}
    for separable, fraction in ((True, 10.0), (False, 0.0)):
        monkeypatch.setattr(activations, "SEPARABLE_COST_FRACTION", fraction)
        grids[separable] = activations.SphereGrid(factors).double()
        assert grids[separable].separable is separable
    x = torch.randn(7, factors.to_lat.shape[2], 5, dtype=torch.float64)
    torch.testing.assert_close(grids[True].silu(x), grids[False].silu(x), rtol=0, atol=1e-6)
    points = grids[True].to_grid(x)
    torch.testing.assert_close(points, grids[False].to_grid(x), rtol=0, atol=1e-6)
    torch.testing.assert_close(grids[True].from_grid(points), grids[False].from_grid(points), rtol=0, atol=1e-6)


def test_rotation_equivariance(potential: Potential, crystal: Atoms) -> None:
    ref = evaluate(potential, crystal)
    from scipy.spatial.transform import Rotation

    rot = Rotation.random(random_state=7).as_matrix()
    rotated = crystal.copy()
    rotated.set_cell(crystal.cell[:] @ rot.T, scale_atoms=False)
    rotated.positions = crystal.positions @ rot.T
    out = evaluate(potential, rotated)
    assert abs(out["energy"][0] - ref["energy"][0]) < 1e-5 * len(crystal)
    assert np.abs(out["forces"] - ref["forces"] @ rot.T).max() < 1e-4
    # fairchem's rank-2 head applies a SiLU MLP to each l = 2 component separately, so only the
    # isotropic part of the stress is exactly invariant; we reproduce that head as it is.
    assert abs(np.trace(out["stress"][0]) - np.trace(ref["stress"][0])) < 1e-6


def test_translation_permutation_and_image_invariance(potential: Potential, crystal: Atoms) -> None:
    ref = evaluate(potential, crystal)
    shifted = crystal.copy()
    shifted.positions += np.array([0.7, -1.3, 2.9])
    shifted.positions[0] += crystal.cell[1]  # one atom moved to a periodic image
    perm = np.random.default_rng(0).permutation(len(crystal))
    permuted = shifted[perm]
    out = evaluate(potential, permuted)
    assert abs(out["energy"][0] - ref["energy"][0]) < 1e-5 * len(crystal)
    assert np.abs(out["forces"] - ref["forces"][perm]).max() < 1e-4
    assert np.abs(out["stress"] - ref["stress"]).max() < 1e-5


def test_supercell_is_extensive() -> None:
    """With degenerate neighbour shells kept (non-strict max_neighbors), a 2x2x1 supercell of an
    unrattled crystal has 4x the energy (minus element references) and the same forces."""
    potential = seeded_potential(max_neighbors=12)
    primitive = bulk("Cu", "fcc", a=3.6)
    supercell = primitive * (2, 2, 1)
    ref, out = evaluate(potential, primitive), evaluate(potential, supercell)
    mean = potential.normalizers["energy"].mean
    assert abs((out["energy"][0] - mean) - 4 * (ref["energy"][0] - mean)) < 1e-5 * len(supercell)
    assert np.abs(out["forces"] - np.tile(ref["forces"], (4, 1))).max() < 1e-5


def test_batch_equals_single_evaluations(potential: Potential, crystal: Atoms) -> None:
    molecule = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    batch = evaluate(potential, [crystal, molecule])
    one, two = evaluate(potential, crystal), evaluate(potential, molecule)
    assert np.allclose(batch["energy"], [one["energy"][0], two["energy"][0]], atol=1e-5)
    assert np.allclose(batch["forces"], np.concatenate([one["forces"], two["forces"]]), atol=1e-5)


def test_edge_chunks_give_the_same_result_and_only_without_autograd(potential: Potential, crystal: Atoms,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU attention runs edges in chunks under no_grad only; chunked and whole sums agree."""
    from eqv2_calc.model import attention

    monkeypatch.setitem(attention.EDGE_CHUNK, "cpu", 7)
    graph = potential.make_graph(crystal)
    num_edges = graph.edge_index.shape[1]
    edges = attention.EdgeGeometry(graph.edge_index, torch.empty(num_edges, 1, 1), torch.empty(num_edges, 1, 1),
                                   torch.empty(num_edges, 1), graph.atomic_numbers, len(crystal))
    with torch.no_grad():
        sizes = [c.stop - c.start for c in edges.chunks()]
        assert len(sizes) == -(-num_edges // 7) and sum(sizes) == num_edges and max(sizes) - min(sizes) <= 1
        assert [c.start for c in edges.chunks()[1:]] == [c.stop for c in edges.chunks()[:-1]]
        chunked = evaluate(potential, crystal)
    assert len(edges.chunks()) == 1  # autograd records: one chunk (a slice's backward is O(E))
    monkeypatch.setitem(attention.EDGE_CHUNK, "cpu", num_edges)
    whole = evaluate(potential, crystal)
    assert np.allclose(chunked["energy"], whole["energy"], atol=1e-10)
    assert np.allclose(chunked["forces"], whole["forces"], atol=1e-10)


def test_isolated_atom_is_finite(potential: Potential) -> None:
    out = evaluate(potential, Atoms("Cu", positions=[[0, 0, 0]]))
    assert np.isfinite(out["energy"]).all() and np.abs(out["forces"]).max() == 0.0


@pytest.mark.parametrize(
    "options,message",
    [
        (dict(lmax_list=[2, 2], mmax_list=[1, 1]), "one resolution"),
        (dict(norm_type="batch_norm"), "norm_type"),
        (dict(use_s2_act_attn=True), "use_s2_act_attn"),
        (dict(mmax_list=[5]), "mmax"),
        (dict(edge_grid_resolution=[8]), "edge_grid_resolution"),
        (dict(node_grid_resolution=[8, 1]), "node_grid_resolution"),
        (dict(node_grid_resolution=[8, 2.5]), "node_grid_resolution"),
    ],
)
def test_config_rejects_unsupported_options(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EquiformerV2Config(**{**TEST_CONFIG, **options})


def test_config_from_dict_names_unknown_options() -> None:
    with pytest.raises(ConfigError, match="lmax_lst"):
        EquiformerV2Config.from_dict({"lmax_lst": [4]})
    config = EquiformerV2Config.from_dict({"alpha_drop": 0.1, "lmax_list": [4], "mmax_list": [2]})
    assert config.ignored == ("alpha_drop",)
    assert EquiformerV2Config.from_dict(config.to_dict()) == config
    assert "edge_grid_resolution" not in config.to_dict()  # unset: fairchem's own keys only


def test_grid_shapes_follow_fairchem_unless_set() -> None:
    """fairchem's SO3_Grid rule (lat 2(lmax+1); long 2(m+1)+1 when m == lmax, else 2m+1; or the resolution
    squared), and our per-grid (lat, long) options, which survive the plain-JSON round trip."""
    default = EquiformerV2Config(lmax_list=[4], mmax_list=[2])
    assert default.grid_shape(edges=True) == (10, 5) and default.grid_shape(edges=False) == (10, 11)
    assert EquiformerV2Config(grid_resolution=18).grid_shape(edges=True) == (18, 18)
    split = EquiformerV2Config(grid_resolution=8, edge_grid_resolution=[8, 24], node_grid_resolution=(16, 24))
    assert split.grid_shape(edges=True) == (8, 24) and split.grid_shape(edges=False) == (16, 24)
    assert EquiformerV2Config.from_dict(split.to_dict()) == split


@pytest.fixture(scope="module")
def conservative() -> Potential:
    return seeded_potential(direct_forces=False, stress_head=None)


def test_conservative_forces_are_minus_energy_gradient(conservative: Potential, crystal: Atoms) -> None:
    out = evaluate(conservative, crystal)
    h = 1e-4
    for atom, axis in [(0, 0), (1, 2), (3, 1)]:
        energies = []
        for sign in (1, -1):
            moved = crystal.copy()
            moved.positions[atom, axis] += sign * h
            energies.append(evaluate(conservative, moved)["energy"][0])
        assert -(energies[0] - energies[1]) / (2 * h) == pytest.approx(out["forces"][atom, axis], abs=1e-5)


def test_conservative_stress_is_strain_derivative(conservative: Potential, crystal: Atoms) -> None:
    out = evaluate(conservative, crystal)
    h = 1e-5
    for i, j in [(0, 0), (1, 2), (2, 1)]:
        energies = []
        for sign in (1, -1):
            strain = np.eye(3)
            strain[i, j] += sign * h / 2
            strain[j, i] += sign * h / 2
            strained = crystal.copy()
            strained.set_cell(crystal.cell[:] @ strain, scale_atoms=True)
            energies.append(evaluate(conservative, strained)["energy"][0])
        expected = (energies[0] - energies[1]) / (2 * h) / crystal.get_volume()
        assert out["stress"][0, i, j] == pytest.approx(expected, abs=1e-6)


def test_conservative_gradient_finite_on_the_frame_pole(conservative: Potential) -> None:
    from eqv2_calc.model.so3 import frame_rotation

    pole = np.array(frame_rotation()).T @ np.array([0.0, 1.0, 0.0])  # edge direction mapped onto +y
    atoms = Atoms("CuO", positions=[[0, 0, 0], 1.9 * pole])
    out = evaluate(conservative, atoms)
    assert np.isfinite(out["forces"]).all()
    assert np.abs(out["forces"][0] + out["forces"][1]).max() < 1e-8  # Newton's third law for a dimer
