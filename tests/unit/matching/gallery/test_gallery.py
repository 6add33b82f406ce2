"""The in-memory 1:N gallery: exact answers, subjects not templates, tenants apart, memory bound."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from numpy.typing import NDArray

from bioauth.errors import InternalError, InvalidInput
from bioauth.matching.fusion import FusionRule, fused_distance
from bioauth.matching.gallery import Gallery, GalleryResult, TenantGalleries
from bioauth.matching.gallery.index import SearchBackend, make_backend
from bioauth.matching.gallery.reduce import FusedTemplate, reducer_for_rule
from bioauth.matching.scores import Metric, cross_distances

DIM = 24


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, SearchBackend]]:
    """Two scan threads each, for one probe too, so the block split and merge are exercised."""
    made = {name: make_backend(name, 2, single_probe_threads=2) for name in ("numpy", "faiss")}
    yield made
    for backend in made.values():
        backend.close()


def _enrol_random(
    gallery: Gallery, rng: np.random.Generator, subjects: int
) -> dict[str, NDArray[np.float32]]:
    enrolled: dict[str, NDArray[np.float32]] = {}
    for i in range(subjects):
        templates = rng.standard_normal((1 + i % 3, gallery.dim)).astype(np.float32)
        gallery.upsert(f"subject-{i}", templates)
        enrolled[f"subject-{i}"] = templates
    return enrolled


def _brute_force(
    enrolled: dict[str, NDArray[np.float32]], probes: NDArray[np.float32], metric: Metric
) -> list[list[tuple[str, float]]]:
    """Every subject by its nearest template, nearest first, per probe."""
    names = list(enrolled)
    per_subject = np.stack(
        [cross_distances(probes, enrolled[name], metric).min(axis=1) for name in names], axis=1
    )
    return [
        [(names[j], float(row[j])) for j in np.argsort(row, kind="stable")] for row in per_subject
    ]


def _assert_exact(results: list[GalleryResult], expected: list[list[tuple[str, float]]]) -> None:
    assert len(results) == len(expected)
    for result, ranking in zip(results, expected, strict=True):
        assert result.best is not None
        assert result.runner_up is not None
        assert (result.best.subject_id, result.runner_up.subject_id) == (
            ranking[0][0],
            ranking[1][0],
        )
        assert result.best.distance == pytest.approx(ranking[0][1], abs=1e-5)
        assert result.runner_up.distance == pytest.approx(ranking[1][1], abs=1e-5)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("backend_name", ["numpy", "faiss"])
def test_search_equals_brute_force_after_enrol_replace_and_remove(
    backends: dict[str, SearchBackend], backend_name: str, metric: Metric
) -> None:
    """Over several blocks, after re-enrolments and opt-outs, answers equal a brute-force scan."""
    rng = np.random.default_rng(7)
    gallery = Gallery(dim=DIM, metric=metric, backend=backends[backend_name], block_rows=256)
    enrolled = _enrol_random(gallery, rng, 700)
    for i in range(0, 700, 5):
        gallery.remove(f"subject-{i}")
        del enrolled[f"subject-{i}"]
    for i in range(1, 700, 9):
        if f"subject-{i}" in enrolled:
            enrolled[f"subject-{i}"] = rng.standard_normal((2, DIM)).astype(np.float32)
            gallery.upsert(f"subject-{i}", enrolled[f"subject-{i}"])
    probes = rng.standard_normal((40, DIM)).astype(np.float32)

    assert len(gallery) == len(enrolled)
    assert gallery.template_count == sum(t.shape[0] for t in enrolled.values())
    _assert_exact(gallery.search(probes), _brute_force(enrolled, probes, metric))
    _assert_exact(gallery.search(probes[3]), _brute_force(enrolled, probes[3:4], metric))


def test_numpy_and_faiss_backends_agree(backends: dict[str, SearchBackend]) -> None:
    """Both kernels over the same arrays give the same subjects and distances."""
    rng = np.random.default_rng(11)
    gallery = Gallery(dim=DIM, backend=backends["numpy"], block_rows=512)
    _enrol_random(gallery, rng, 1500)
    probes = rng.standard_normal((70, DIM)).astype(np.float32)
    by_numpy = gallery.search(probes)
    gallery.backend = backends["faiss"]
    by_faiss = gallery.search(probes)
    assert [r.candidates for r in by_numpy] == [r.candidates for r in by_faiss]


def test_best_and_runner_up_are_distinct_subjects() -> None:
    """A subject whose three templates are the three nearest rows still fills only one place."""
    gallery = Gallery(dim=4, backend="numpy")
    probe = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)
    gallery.upsert("near", probe + np.array([[0.01, 0, 0, 0], [0, 0.02, 0, 0], [0, 0, 0.03, 0]]))
    gallery.upsert("second", probe + np.array([[0.5, 0, 0, 0]]))
    gallery.upsert("far", probe + np.array([[3.0, 0, 0, 0], [0, 3.0, 0, 0]]))

    (result,) = gallery.search(probe)

    assert result.best is not None
    assert result.runner_up is not None
    assert result.best.subject_id == "near"
    assert result.best.distance == pytest.approx(0.01, abs=1e-6)
    assert result.best.enrolment_images == 3
    assert result.runner_up.subject_id == "second"
    assert result.runner_up.distance == pytest.approx(0.5, abs=1e-6)
    gallery.close()


def test_remove_forgets_the_subject_and_keeps_the_others() -> None:
    """After opt-out the subject is never returned, even for a probe equal to its template."""
    rng = np.random.default_rng(3)
    gallery = Gallery(dim=DIM, block_rows=256)
    enrolled = _enrol_random(gallery, rng, 300)
    gone = enrolled.pop("subject-10")

    assert gallery.remove("subject-10") is True
    assert gallery.remove("subject-10") is False
    assert "subject-10" not in gallery
    assert len(gallery) == 299
    results = gallery.search(gone)
    assert all(r.best is not None and r.best.subject_id != "subject-10" for r in results)
    _assert_exact(results, _brute_force(enrolled, gone, "euclidean"))
    gallery.close()


def test_remove_every_subject_empties_the_gallery() -> None:
    """Removing all subjects in any order leaves no rows, and search answers nothing."""
    rng = np.random.default_rng(5)
    gallery = Gallery(dim=DIM, block_rows=256)
    enrolled = _enrol_random(gallery, rng, 400)
    for name in rng.permutation(list(enrolled)):
        assert gallery.remove(str(name))
    assert len(gallery) == 0
    assert gallery.template_count == 0
    assert gallery.memory().row_bytes == 0
    assert gallery.search(np.ones(DIM, dtype=np.float32)) == [GalleryResult(None, None)]
    gallery.close()


def test_upsert_replaces_a_subjects_templates() -> None:
    """Re-enrolment swaps all templates at once: the old ones no longer match."""
    gallery = Gallery(dim=2)
    gallery.upsert("a", [[0.0, 0.0], [0.1, 0.0]])
    gallery.upsert("b", [[5.0, 5.0]])
    gallery.upsert("a", [[10.0, 10.0]])

    (result,) = gallery.search([0.0, 0.0])

    assert result.best is not None
    assert result.runner_up is not None
    assert result.best.subject_id == "b"
    assert result.runner_up.subject_id == "a"
    assert result.runner_up.enrolment_images == 1
    assert gallery.template_count == 2
    gallery.close()


def test_small_galleries_answer_what_they_have() -> None:
    """No subject: nothing; one subject: a best and no runner-up."""
    gallery = Gallery(dim=3)
    assert gallery.search([[1.0, 2.0, 3.0]]) == [GalleryResult(None, None)]
    gallery.upsert("only", [[1.0, 2.0, 3.0]])
    (result,) = gallery.search([1.0, 2.0, 3.0])
    assert result.best is not None
    assert result.best.subject_id == "only"
    assert result.runner_up is None
    assert result.candidates == [result.best]
    gallery.close()


def test_tenants_are_separate_galleries() -> None:
    """A subject enrolled for one tenant is never found through another tenant's gallery."""
    galleries = TenantGalleries(dim=3)
    galleries.get("tenant-a").upsert("alice", [[1.0, 0.0, 0.0]])
    galleries.get("tenant-a").upsert("bob", [[0.0, 1.0, 0.0]])
    galleries.get("tenant-b").upsert("carol", [[0.0, 0.0, 1.0]])

    (seen_by_b,) = galleries.get("tenant-b").search([1.0, 0.0, 0.0])
    (seen_by_a,) = galleries.get("tenant-a").search([0.0, 0.0, 1.0])

    assert seen_by_b.best is not None
    assert seen_by_b.best.subject_id == "carol"
    assert seen_by_b.runner_up is None
    assert seen_by_a.best is not None
    assert {seen_by_a.best.subject_id, seen_by_a.runner_up and seen_by_a.runner_up.subject_id} == {
        "alice",
        "bob",
    }
    assert "alice" not in galleries.get("tenant-b")
    assert galleries.find("tenant-c") is None
    assert galleries.tenants() == ["tenant-a", "tenant-b"]
    galleries.drop("tenant-a")
    assert galleries.find("tenant-a") is None
    galleries.close()


def _server_style_id(number: int) -> str:
    """Like ``store.new_subject_id()`` (22 URL-safe base64 characters), but reproducible."""
    return base64.urlsafe_b64encode(number.to_bytes(16, "big")).rstrip(b"=").decode()


def test_counted_memory_stays_within_bound_of_raw_template_bytes() -> None:
    """One row per subject (fused templates: the most id bytes per row), server-style ids:
    the counted bytes stay within 1.25x of the raw float32 templates while the gallery grows
    and while half of it opts out."""
    rng = np.random.default_rng(13)
    dim, subjects = 128, 9000
    gallery = Gallery(dim=dim, block_rows=2048)
    rows = rng.standard_normal((subjects, dim)).astype(np.float32)
    ratios: list[float] = []
    for i in range(subjects):
        gallery.upsert(_server_style_id(i), rows[i : i + 1])
        if i >= 4096 and i % 101 == 0:
            ratios.append(gallery.memory().ratio)
    for i in range(0, subjects, 2):
        gallery.remove(_server_style_id(i))
        if i % 101 == 0 and len(gallery) >= 4096:
            ratios.append(gallery.memory().ratio)
    memory = gallery.memory()

    assert memory.subjects == memory.rows == subjects // 2
    assert memory.raw_template_bytes == memory.rows * dim * 4
    # The norm column and the row -> subject map alone add 2/128 of the raw bytes.
    assert memory.row_bytes + memory.owner_bytes >= memory.raw_template_bytes * (1 + 2 / dim)
    assert memory.total_bytes == memory.row_bytes + memory.owner_bytes + memory.subject_bytes
    assert len(ratios) > 50
    assert max(ratios) <= 1.25
    gallery.close()


def test_fused_template_gallery_matches_the_policys_fused_distance() -> None:
    """With a template fusion rule the gallery holds one row per subject, at the policy's
    fused distance."""
    rng = np.random.default_rng(17)
    gallery = Gallery(dim=DIM, reducer=reducer_for_rule(FusionRule.MEAN_L2_NORMALISED))
    enrolment = {f"s{i}": rng.standard_normal((3, DIM)).astype(np.float32) for i in range(50)}
    for name, templates in enrolment.items():
        gallery.upsert(name, templates)
    probe = rng.standard_normal(DIM).astype(np.float32)
    fused_probe = probe / np.linalg.norm(probe)

    (result,) = gallery.search(fused_probe)

    expected = sorted(
        (fused_distance(t, probe[None], FusionRule.MEAN_L2_NORMALISED, "euclidean"), name)
        for name, t in enrolment.items()
    )
    assert gallery.template_count == 50
    assert isinstance(gallery.reducer, FusedTemplate)
    assert result.best is not None
    assert result.runner_up is not None
    assert result.best.subject_id == expected[0][1]
    assert result.best.distance == pytest.approx(expected[0][0], abs=1e-5)
    assert result.best.enrolment_images == 3
    assert result.runner_up.subject_id == expected[1][1]
    gallery.close()


def test_score_fusion_rule_has_no_gallery_form() -> None:
    """mean_distance needs every image pair, so it is refused rather than approximated."""
    with pytest.raises(ValueError, match="mean_distance"):
        reducer_for_rule(FusionRule.MEAN_DISTANCE)


@pytest.mark.parametrize(
    ("templates", "field"),
    [
        (np.zeros((4, DIM)), "templates"),  # more than three images
        (np.zeros((1, DIM + 1)), "templates"),  # wrong dimension
        (np.full((1, DIM), np.nan), "templates"),  # not finite
    ],
)
def test_upsert_refuses_bad_templates(templates: NDArray[np.float64], field: str) -> None:
    """Wrong count, dimension or values are the caller's fault and change nothing."""
    gallery = Gallery(dim=DIM)
    with pytest.raises(InvalidInput) as caught:
        gallery.upsert("x", templates)
    assert caught.value.field == field
    assert len(gallery) == 0
    gallery.close()


def test_refuses_unstorable_subject_ids_and_zero_cosine_probes() -> None:
    """Empty or NUL-carrying ids and zero vectors under cosine are refused as invalid input."""
    gallery = Gallery(dim=2, metric="cosine")
    for bad in ("", "a\x00b", "x" * 129):
        with pytest.raises(InvalidInput):
            gallery.upsert(bad, [[1.0, 0.0]])
        assert bad not in gallery
    with pytest.raises(InvalidInput):
        gallery.search([0.0, 0.0])
    gallery.close()


async def test_search_async_runs_off_the_event_loop() -> None:
    """The async form returns the same answer as the blocking one."""
    gallery = Gallery(dim=2)
    gallery.upsert("a", [[0.0, 1.0]])
    gallery.upsert("b", [[1.0, 0.0]])
    assert await gallery.search_async([[0.1, 0.9]]) == gallery.search([[0.1, 0.9]])
    gallery.close()


def test_searches_during_enrolment_and_opt_out_see_consistent_galleries() -> None:
    """Searches racing enrolments and opt-outs never fail and always see whole subjects."""
    rng = np.random.default_rng(19)
    gallery = Gallery(dim=DIM, block_rows=256)
    stable = _enrol_random(gallery, rng, 200)
    probes = rng.standard_normal((8, DIM)).astype(np.float32)
    errors: list[BaseException] = []
    stop = threading.Event()

    def churn() -> None:
        try:
            for round_ in range(150):
                name = f"churn-{round_ % 20}"
                gallery.upsert(name, rng.standard_normal((2, DIM)).astype(np.float32) + 100)
                gallery.remove(name)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            stop.set()

    writer = threading.Thread(target=churn)
    writer.start()
    searches = 0
    while not stop.is_set() or searches < 5:
        for result in gallery.search(probes):
            assert result.best is not None
            assert result.best.subject_id in stable
        searches += 1
    writer.join()

    assert errors == []
    assert len(gallery) == 200
    _assert_exact(gallery.search(probes), _brute_force(stable, probes, "euclidean"))
    gallery.close()


class _TooManyRows:
    """A broken plug-in reducer: more rows than it declares."""

    name = "broken"
    max_rows = 1

    def rows(self, templates: NDArray[np.float32]) -> NDArray[np.float32]:
        return np.concatenate([templates, templates])


def test_a_reducer_breaking_its_contract_changes_nothing() -> None:
    """A reducer that returns more rows than ``max_rows`` is our bug, caught before any change."""
    gallery = Gallery(dim=2, reducer=_TooManyRows())
    with pytest.raises(InternalError):
        gallery.upsert("a", [[1.0, 0.0]])
    assert len(gallery) == 0
    assert gallery.template_count == 0
    gallery.close()
