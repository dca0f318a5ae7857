"""HNSW approximate nearest-neighbour index for cosine similarity, compiled with numba.

This is a self-contained implementation of Hierarchical Navigable Small World graphs
(Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search using
Hierarchical Navigable Small World graphs", 2016/2018).  It has no dependency on the rest
of ``media_assets`` and needs only ``numpy`` and ``numba``.

Similarity and vectors
    Vectors are stored L2-normalised as float32 (``add`` normalises them); similarity is the
    inner product (cosine similarity) and the graph distance is ``1 - dot``.

Graph construction (paper Algorithm 1)
    * every node gets a level ``floor(-ln(u) * mL)`` with ``mL = 1 / ln(M)``; ``u`` comes from a
      counter-based RNG (splitmix64 of ``seed`` and the node's row number), so a build is
      deterministic for a given seed and insertion order, independent of how rows are batched;
    * greedy descent from the entry point through the layers above the node's level, then a
      beam search with ``ef_construction`` on each layer from the node's level down to 0;
    * neighbours are chosen with the paper's heuristic (Algorithm 4, with
      ``extendCandidates = keepPrunedConnections = false`` as in the reference hnswlib): a
      candidate is kept only if it is closer to the new node than to every neighbour already
      kept.  ``M`` neighbours are selected per layer; a node keeps at most ``2 * M`` links on
      layer 0 and ``M`` on upper layers.  When a back-link overflows a neighbour's list, that
      list is re-selected with the same heuristic.

Search (paper Algorithms 2 and 5)
    Greedy descent on the upper layers, then a beam search of width ``ef`` on layer 0.
    Deleted (tombstoned) and filtered-out nodes are still traversed but never returned.

Memory layout (contiguous arrays, no Python object per node; ``n`` = node rows)
    ``vectors``        float32 [n, dim]     normalised vectors; row number = node id
    ``ids``            int64   [n]          external id (e.g. frame id) of every row
    ``levels``         int32   [n]          top layer of every node
    ``links0``         int32   [n*(2M+1)]   layer-0 adjacency, per node one fixed-size block
                                            ``[count, link_1 .. link_2M]``
    ``upper_offsets``  int64   [n]          where the node's blocks start in ``upper_links``
    ``upper_links``    int32   [sum(levels)*(M+1)]  per node and layer 1..level one block
                                            ``[count, link_1 .. link_M]``, layers ascending
    ``tombstones``     uint8   [n]          1 = deleted
    In memory the arrays have spare capacity and grow geometrically on ``add``.

Incremental updates
    ``add`` inserts into the existing graph; ``delete`` only sets tombstones; ``compact``
    rebuilds the graph from the live rows.  Compact when ``needs_compaction`` (tombstones make
    up at least ``COMPACT_TOMBSTONE_FRACTION`` of the rows): tombstones still cost traversal
    time and memory.

Filtered search
    ``allowed`` restricts the results to a boolean row mask or a collection of external ids.
    The beam search keeps traversing filtered-out nodes and widens ``ef`` to
    ``ceil(k / allowed_fraction)`` (at most ``FILTERED_EF_CAP``).  When fewer than
    ``BRUTE_FORCE_ALLOWED_FRACTION`` of the live nodes are allowed, or no more than ``ef``,
    the allowed rows are scanned exactly instead (a graph search would have to visit about
    ``k / fraction**2`` nodes, more than such a scan touches).

Performance
    The kernels follow hnswlib's tricks: visited nodes are marked with an epoch counter in a
    reused per-thread array (no clearing per search), adjacency lives in flat int32 arrays
    with the count inline, and the beam search first collects a node's unvisited neighbours
    while issuing a prefetch for each vector, then computes their distances (``fastmath``
    lets LLVM vectorise the float32 dot products).  The layer-0 search kernel is shared by
    the build and queries.

Thread safety
    Searches are lock-free: each call reads an immutable snapshot of the graph (array
    references and counts) and uses a per-thread visited-marks array.  ``add``, ``delete``,
    ``compact`` and ``save`` serialise on a lock.  A search running concurrently with ``add``
    works on the rows that existed when it started: it ignores links to newer rows and may
    see some of the re-pruned neighbour lists (every link it reads is a valid row).  The
    compiled kernels release the GIL, so searches from several threads run in parallel.

File format (version 1), all integers little-endian
    ======  ====  ===================  ==================================================
    offset  size  field                meaning
    ======  ====  ===================  ==================================================
    0       8     magic                ``b"MAHNSW01"``
    8       4     format_version       uint32, currently 1
    12      4     dim                  uint32 vector dimension
    16      4     M                    uint32
    20      4     ef_construction      uint32
    24      4     ef_search            uint32 default search beam width
    28      8     seed                 uint64 level RNG seed
    36      8     node_count           uint64 rows ``n`` (live + tombstoned)
    44      8     tombstone_count      uint64
    52      8     entry_point          int64 row of the entry point, -1 if empty
    60      4     max_level            int32 level of the entry point, -1 if empty
    64      4     model_id_length      uint32 bytes of the model id
    68      8     upper_links_length   uint64 number of int32 values in ``upper_links``
    76      8     file_size            uint64 total size of the file in bytes
    84      L     model_id             utf-8, ``L = model_id_length`` (embedding model name)
    84+L    112   array table          7 x (offset uint64, byte length uint64), in the order
                                       vectors, ids, levels, links0, upper_offsets,
                                       upper_links, tombstones
    196+L   4     header_crc32         zlib.crc32 of bytes ``[0, 196+L)``
    ======  ====  ===================  ==================================================

    Each array follows as raw little-endian bytes (dtypes and shapes as in the memory layout
    above, C order) starting at an offset that is a multiple of 64, so it can be memory-mapped
    in place; gaps are zero bytes.  ``load`` checks magic, version, header checksum, file size,
    the array table, the expected dimension / model id and the graph structure (link targets
    in range, block offsets consistent), so a damaged file raises ``IndexFileError`` instead
    of crashing the compiled search.  The vector payload is not checksummed, so ``mmap=True``
    loads stay lazy.  ``save`` writes a temporary file in the target directory, fsyncs it and
    renames it over the target (``os.replace``), so readers never see a partial file.
"""

from __future__ import annotations

import dataclasses
import math
import mmap as mmap_module
import os
import secrets
import struct
import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "BRUTE_FORCE_ALLOWED_FRACTION",
    "COMPACT_TOMBSTONE_FRACTION",
    "FILTERED_EF_CAP",
    "FORMAT_MAGIC",
    "FORMAT_VERSION",
    "HNSWIndex",
    "IndexFileError",
]

COMPACT_TOMBSTONE_FRACTION = 0.2
"""``needs_compaction`` is true once at least this fraction of the rows are tombstones."""

BRUTE_FORCE_ALLOWED_FRACTION = 0.02
"""Filtered searches allowing fewer than this fraction of the live nodes scan them exactly."""

FILTERED_EF_CAP = 1000
"""Upper bound for the beam width that filtered searches widen ``ef`` to."""

FORMAT_MAGIC = b"MAHNSW01"
FORMAT_VERSION = 1
ARRAY_ALIGNMENT = 64

_HEADER = struct.Struct("<8sIIIIIQQQqiIQQ")
_ARRAY_NAMES = (
    "vectors",
    "ids",
    "levels",
    "links0",
    "upper_offsets",
    "upper_links",
    "tombstones",
)
_ARRAY_DTYPES = {
    "vectors": np.dtype("<f4"),
    "ids": np.dtype("<i8"),
    "levels": np.dtype("<i4"),
    "links0": np.dtype("<i4"),
    "upper_offsets": np.dtype("<i8"),
    "upper_links": np.dtype("<i4"),
    "tombstones": np.dtype("u1"),
}
_TABLE = struct.Struct("<" + "QQ" * len(_ARRAY_NAMES))
_CRC = struct.Struct("<I")
_MIN_CAPACITY = 1024
_NOTHING_EXCLUDED = np.zeros(0, np.uint8)
_MAX_LEVEL = 64  # sanity bound for levels read from a file; real levels stay below ~20


class IndexFileError(ValueError):
    """An index file is missing pieces, damaged, or does not match what the caller expects."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"index file {self.path} {problem}")


# --------------------------------------------------------------------------------------
# Compiled kernels
# --------------------------------------------------------------------------------------

_JIT = dict(cache=True, nogil=True, fastmath=True)
# The prefetch intrinsic is mangled by pointer type: opaque ``ptr`` since LLVM 15.
_PREFETCH_INTRINSIC = "llvm.prefetch.p0" if llvm_binding.llvm_version_info >= (15,) else "llvm.prefetch.p0i8"


@intrinsic
def _prefetch(typingctx, array, row, column):
    """Hint the CPU to start loading the cache line holding ``array[row, column]``."""
    signature = types.void(array, row, column)

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array_struct = context.make_array(array_type)(context, builder, args[0])
        index = [
            context.cast(builder, value, value_type, types.intp)
            for value, value_type in zip(args[1:], signature.args[1:], strict=True)
        ]
        pointer = cgutils.get_item_pointer(context, builder, array_type, array_struct, index)
        byte_pointer = ir.IntType(8).as_pointer()
        int32 = ir.IntType(32)
        function_type = ir.FunctionType(ir.VoidType(), [byte_pointer, int32, int32, int32])
        prefetch = cgutils.get_or_insert_function(builder.module, function_type, _PREFETCH_INTRINSIC)
        read, keep_in_all_cache_levels, data_cache = int32(0), int32(3), int32(1)
        builder.call(prefetch, [builder.bitcast(pointer, byte_pointer), read, keep_in_all_cache_levels, data_cache])
        return context.get_dummy_value()

    return signature, codegen


@njit(**_JIT)
def _dot(vectors, row, query):
    total = np.float32(0.0)
    for j in range(query.shape[0]):
        total += vectors[row, j] * query[j]
    return total


@njit(**_JIT)
def _splitmix64(x):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(**_JIT)
def _draw_levels(seed, first_row, count, level_mult):
    """Levels of rows ``first_row .. first_row+count-1``; a pure function of seed and row."""
    levels = np.empty(count, np.int32)
    seed_hash = _splitmix64(np.uint64(seed))
    for i in range(count):
        bits = _splitmix64(seed_hash + np.uint64(first_row + i))
        uniform = ((bits >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)  # (0, 1)
        levels[i] = np.int32(math.floor(-math.log(uniform) * level_mult))
    return levels


@njit(**_JIT)
def _next_epoch(marks, epoch_box):
    """Advance the visited-marks epoch; a node is visited iff ``marks[row] == epoch``."""
    epoch = np.int64(epoch_box[0]) + 1
    if epoch >= 0xFFFFFFFF:
        marks.fill(0)
        epoch = 1
    epoch_box[0] = epoch
    return np.uint32(epoch)


@njit(**_JIT)
def _heap_push(keys, rows, size, key, row):
    """Push onto a binary min-heap stored in ``keys``/``rows``; returns the new size."""
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] <= key:
            break
        keys[i] = keys[parent]
        rows[i] = rows[parent]
        i = parent
    keys[i] = key
    rows[i] = row
    return size + 1


@njit(**_JIT)
def _heap_pop(keys, rows, size):
    """Remove the minimum of a binary min-heap; returns the new size."""
    size -= 1
    last_key = keys[size]
    last_row = rows[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and keys[child + 1] < keys[child]:
            child += 1
        if keys[child] >= last_key:
            break
        keys[i] = keys[child]
        rows[i] = rows[child]
        i = child
    keys[i] = last_key
    rows[i] = last_row
    return size


@njit(**_JIT)
def _doubled(keys, rows):
    bigger_keys = np.empty(2 * keys.shape[0], keys.dtype)
    bigger_rows = np.empty(2 * rows.shape[0], rows.dtype)
    for i in range(keys.shape[0]):  # explicit loops: slice assignment is slow to compile
        bigger_keys[i] = keys[i]
        bigger_rows[i] = rows[i]
    return bigger_keys, bigger_rows


@njit(**_JIT)
def _block_start(layer, row, M, upper_offsets):
    """Index of the ``[count, links...]`` block of ``row`` on ``layer`` in its link array."""
    if layer == 0:
        return np.int64(row) * (2 * M + 1)
    return upper_offsets[row] + (layer - 1) * (M + 1)


@njit(**_JIT)
def _greedy_closest(query, vectors, links0, upper_links, upper_offsets, M, layer, row, dist, n_limit):
    """Hill-climb on one upper layer to the node closest to ``query`` (paper Alg. 2, ef=1)."""
    improved = True
    while improved:
        improved = False
        links = links0 if layer == 0 else upper_links
        start = _block_start(layer, row, M, upper_offsets)
        for i in range(links[start]):
            neighbour = links[start + 1 + i]
            if neighbour >= n_limit:
                continue
            neighbour_dist = np.float32(1.0) - _dot(vectors, neighbour, query)
            if neighbour_dist < dist:
                dist = neighbour_dist
                row = neighbour
                improved = True
    return row, dist


@njit(**_JIT)
def _beam_search(
    query,
    vectors,
    links0,
    upper_links,
    upper_offsets,
    M,
    layer,
    entry,
    entry_dist,
    ef,
    marks,
    epoch_box,
    excluded,
    n_limit,
):
    """Paper Algorithm 2 on one layer: the ``ef`` closest returnable nodes found.

    Nodes with ``excluded[row] != 0`` are expanded but not returned; an empty ``excluded``
    excludes nothing.
    Returns ``(rows, dists, count)`` sorted by distance ascending.
    """
    epoch = _next_epoch(marks, epoch_box)
    check_excluded = excluded.shape[0] != 0
    candidate_keys = np.empty(max(64, 2 * ef), np.float32)  # min-heap on distance
    candidate_rows = np.empty(candidate_keys.shape[0], np.int32)
    result_keys = np.empty(ef + 1, np.float32)  # min-heap on -distance: top is the worst
    result_rows = np.empty(ef + 1, np.int32)
    n_results = 0
    worst = np.float32(np.inf)  # distance a node must beat to enter the results
    unvisited = np.empty(2 * M, np.int32)

    marks[entry] = epoch
    n_candidates = _heap_push(candidate_keys, candidate_rows, 0, entry_dist, entry)
    if not check_excluded or excluded[entry] == 0:
        n_results = _heap_push(result_keys, result_rows, 0, -entry_dist, entry)
        if n_results == ef:
            worst = -result_keys[0]

    while n_candidates > 0:
        row = candidate_rows[0]
        if candidate_keys[0] > worst:
            break
        n_candidates = _heap_pop(candidate_keys, candidate_rows, n_candidates)
        links = links0 if layer == 0 else upper_links
        start = _block_start(layer, row, M, upper_offsets)
        n_unvisited = 0
        for i in range(links[start]):
            neighbour = links[start + 1 + i]
            if neighbour >= n_limit or marks[neighbour] == epoch:
                continue
            marks[neighbour] = epoch
            _prefetch(vectors, neighbour, 0)
            unvisited[n_unvisited] = neighbour
            n_unvisited += 1
        for i in range(n_unvisited):
            neighbour = unvisited[i]
            dist = np.float32(1.0) - _dot(vectors, neighbour, query)
            if dist >= worst:
                continue
            if n_candidates == candidate_keys.shape[0]:
                candidate_keys, candidate_rows = _doubled(candidate_keys, candidate_rows)
            n_candidates = _heap_push(candidate_keys, candidate_rows, n_candidates, dist, neighbour)
            if check_excluded and excluded[neighbour] != 0:
                continue
            n_results = _heap_push(result_keys, result_rows, n_results, -dist, neighbour)
            if n_results > ef:
                n_results = _heap_pop(result_keys, result_rows, n_results)
            if n_results == ef:
                worst = -result_keys[0]

    count = n_results
    rows = np.empty(count, np.int32)
    dists = np.empty(count, np.float32)
    for position in range(count - 1, -1, -1):  # pop worst first, fill from the back
        rows[position] = result_rows[0]
        dists[position] = -result_keys[0]
        n_results = _heap_pop(result_keys, result_rows, n_results)
    return rows, dists, count


@njit(**_JIT)
def _select_neighbours(vectors, rows, dists, count, max_selected, selected):
    """Paper Algorithm 4: keep a candidate only if it is closer to the base than to every
    candidate kept so far.  ``rows``/``dists`` are sorted by distance to the base ascending.
    Writes into ``selected`` and returns how many were kept."""
    if count < max_selected:
        for i in range(count):
            selected[i] = rows[i]
        return count
    n_selected = 0
    for i in range(count):
        if n_selected >= max_selected:
            break
        candidate = rows[i]
        keep = True
        for j in range(n_selected):
            if np.float32(1.0) - _dot(vectors, candidate, vectors[selected[j]]) < dists[i]:
                keep = False
                break
        if keep:
            selected[n_selected] = candidate
            n_selected += 1
    return n_selected


@njit(**_JIT)
def _sort_by_distance(rows, dists):
    """Insertion sort by ``dists`` ascending: the lists are at most 2M+1 long."""
    for i in range(1, dists.shape[0]):
        dist, row = dists[i], rows[i]
        j = i - 1
        while j >= 0 and dists[j] > dist:
            dists[j + 1] = dists[j]
            rows[j + 1] = rows[j]
            j -= 1
        dists[j + 1] = dist
        rows[j + 1] = row


@njit(**_JIT)
def _link_back(vectors, links, start, base, new_row, max_links, selected):
    """Add ``new_row`` to the link block of ``base`` at ``start``, re-selecting if full."""
    count = links[start]
    if count < max_links:
        links[start + 1 + count] = new_row  # write the link before publishing the count
        links[start] = count + 1
        return
    candidate_rows = np.empty(count + 1, np.int32)
    candidate_dists = np.empty(count + 1, np.float32)
    base_vector = vectors[base]
    for i in range(count):
        candidate_rows[i] = links[start + 1 + i]
        candidate_dists[i] = np.float32(1.0) - _dot(vectors, candidate_rows[i], base_vector)
    candidate_rows[count] = new_row
    candidate_dists[count] = np.float32(1.0) - _dot(vectors, new_row, base_vector)
    _sort_by_distance(candidate_rows, candidate_dists)
    n_selected = _select_neighbours(vectors, candidate_rows, candidate_dists, count + 1, max_links, selected)
    for i in range(n_selected):
        links[start + 1 + i] = selected[i]
    links[start] = n_selected


@njit(**_JIT)
def _insert_rows(
    first_row,
    stop_row,
    vectors,
    levels,
    links0,
    upper_links,
    upper_offsets,
    M,
    ef_construction,
    entry_point,
    max_level,
    marks,
    epoch_box,
):
    """Insert rows ``first_row .. stop_row-1`` (vectors, levels and block offsets already
    written, link counts zero) into the graph (paper Algorithm 1).
    Returns the new ``(entry_point, max_level)``."""
    selected = np.empty(2 * M, np.int32)
    no_exclusions = np.zeros(0, np.uint8)
    for row in range(first_row, stop_row):
        query = vectors[row]
        level = levels[row]
        if entry_point < 0:
            entry_point = row
            max_level = level
            continue
        nearest = entry_point
        nearest_dist = np.float32(1.0) - _dot(vectors, nearest, query)
        for layer in range(max_level, level, -1):
            nearest, nearest_dist = _greedy_closest(
                query, vectors, links0, upper_links, upper_offsets, M, layer, nearest, nearest_dist, row
            )
        for layer in range(min(level, max_level), -1, -1):
            found_rows, found_dists, n_found = _beam_search(
                query,
                vectors,
                links0,
                upper_links,
                upper_offsets,
                M,
                layer,
                nearest,
                nearest_dist,
                ef_construction,
                marks,
                epoch_box,
                no_exclusions,
                row,
            )
            n_selected = _select_neighbours(vectors, found_rows, found_dists, n_found, M, selected)
            links = links0 if layer == 0 else upper_links
            max_links = 2 * M if layer == 0 else M
            start = _block_start(layer, row, M, upper_offsets)
            for i in range(n_selected):
                links[start + 1 + i] = selected[i]
            links[start] = n_selected
            for i in range(n_selected):
                neighbour = links[start + 1 + i]
                _link_back(
                    vectors,
                    links,
                    _block_start(layer, neighbour, M, upper_offsets),
                    neighbour,
                    row,
                    max_links,
                    selected,
                )
            nearest = found_rows[0]
            nearest_dist = found_dists[0]
        if level > max_level:
            entry_point = row
            max_level = level
    return entry_point, max_level


@njit(**_JIT)
def _normalised_copy(vector):
    out = np.empty(vector.shape[0], np.float32)
    norm = np.float32(0.0)
    for j in range(vector.shape[0]):
        out[j] = vector[j]
        norm += out[j] * out[j]
    if norm > 0:
        scale = np.float32(1.0) / np.sqrt(norm)
        for j in range(out.shape[0]):
            out[j] *= scale
    return out


@njit(**_JIT)
def _missing_results(n_queries, k):
    """Result arrays filled with the "no result" markers (id -1, similarity -inf)."""
    out_ids = np.empty((n_queries, k), np.int64)
    out_ids.fill(-1)  # empty + fill compiles much faster than np.full
    out_sims = np.empty((n_queries, k), np.float32)
    out_sims.fill(-np.inf)
    return out_ids, out_sims


@njit(**_JIT)
def _search_many(
    queries,
    k,
    ef,
    vectors,
    ids,
    links0,
    upper_links,
    upper_offsets,
    M,
    entry_point,
    max_level,
    n_limit,
    excluded,
    marks,
    epoch_box,
):
    """Top-``k`` external ids and similarities for each query row (paper Algorithm 5)."""
    n_queries = queries.shape[0]
    out_ids, out_sims = _missing_results(n_queries, k)
    for q in range(n_queries):
        query = _normalised_copy(queries[q])
        nearest = entry_point
        nearest_dist = np.float32(1.0) - _dot(vectors, nearest, query)
        for layer in range(max_level, 0, -1):
            nearest, nearest_dist = _greedy_closest(
                query, vectors, links0, upper_links, upper_offsets, M, layer, nearest, nearest_dist, n_limit
            )
        # layer np.int64(0), not a literal 0, so the build's compiled kernel is reused
        rows, dists, count = _beam_search(
            query,
            vectors,
            links0,
            upper_links,
            upper_offsets,
            M,
            np.int64(0),
            nearest,
            nearest_dist,
            ef,
            marks,
            epoch_box,
            excluded,
            n_limit,
        )
        for i in range(min(k, count)):
            out_ids[q, i] = ids[rows[i]]
            out_sims[q, i] = np.float32(1.0) - dists[i]
    return out_ids, out_sims


@njit(**_JIT)
def _scan_rows(queries, k, vectors, ids, rows):
    """Exact top-``k`` over the given rows (the selective-filter fallback)."""
    n_queries = queries.shape[0]
    out_ids, out_sims = _missing_results(n_queries, k)
    heap_sims = np.empty(k + 1, np.float32)  # min-heap on similarity: top is the worst kept
    heap_rows = np.empty(k + 1, np.int32)
    for q in range(n_queries):
        query = _normalised_copy(queries[q])
        size = 0
        for row in rows:
            sim = _dot(vectors, row, query)
            if size == k and sim <= heap_sims[0]:
                continue
            size = _heap_push(heap_sims, heap_rows, size, sim, row)
            if size > k:
                size = _heap_pop(heap_sims, heap_rows, size)
        for position in range(size - 1, -1, -1):
            out_ids[q, position] = ids[heap_rows[0]]
            out_sims[q, position] = heap_sims[0]
            size = _heap_pop(heap_sims, heap_rows, size)
    return out_ids, out_sims


# --------------------------------------------------------------------------------------
# Python API
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Graph:
    """Immutable snapshot of the index state; arrays may have spare capacity past the counts."""

    vectors: np.ndarray
    ids: np.ndarray
    levels: np.ndarray
    links0: np.ndarray
    upper_offsets: np.ndarray
    upper_links: np.ndarray
    tombstones: np.ndarray
    node_count: int = 0
    upper_used: int = 0
    tombstone_count: int = 0
    entry_point: int = -1
    max_level: int = -1

    @property
    def capacity(self) -> int:
        return self.vectors.shape[0]

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in _ARRAY_NAMES}

    def used_arrays(self, M: int) -> dict[str, np.ndarray]:
        """The arrays trimmed to the rows in use (what ``save`` writes)."""
        n = self.node_count
        return {
            "vectors": self.vectors[:n],
            "ids": self.ids[:n],
            "levels": self.levels[:n],
            "links0": self.links0[: n * (2 * M + 1)],
            "upper_offsets": self.upper_offsets[:n],
            "upper_links": self.upper_links[: self.upper_used],
            "tombstones": self.tombstones[:n],
        }


def _empty_graph(dim: int, M: int, capacity: int, upper_capacity: int) -> _Graph:
    return _Graph(
        vectors=np.zeros((capacity, dim), np.float32),
        ids=np.zeros(capacity, np.int64),
        levels=np.zeros(capacity, np.int32),
        links0=np.zeros(capacity * (2 * M + 1), np.int32),
        upper_offsets=np.zeros(capacity, np.int64),
        upper_links=np.zeros(upper_capacity, np.int32),
        tombstones=np.zeros(capacity, np.uint8),
    )


def _as_matrix(vectors: Any, dim: int, what: str) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise ValueError(f"{what} must have shape (n, {dim}) or ({dim},), got {np.shape(vectors)}")
    return matrix if matrix.flags.c_contiguous else np.ascontiguousarray(matrix)


def _row_norms(matrix: np.ndarray) -> np.ndarray:
    """L2 norms of the rows as a column, checked to be usable for normalisation."""
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))[:, None]  # no [n, dim] temporary
    if not np.isfinite(norms).all():
        raise ValueError("vectors contain NaN, infinite or overflowing values")
    if (norms == 0).any():
        raise ValueError("vectors contain all-zero rows, which have no cosine similarity")
    return norms


class HNSWIndex:
    """Cosine-similarity HNSW index over float32 vectors with int64 external ids.

    >>> index = HNSWIndex(dim=512)
    >>> index.add(vectors, frame_ids)
    >>> ids, sims = index.search(query, k=10)       # ids [q, k] int64, sims [q, k] float32
    """

    def __init__(self, dim: int, M: int = 16, ef_construction: int = 200, ef_search: int = 50, seed: int = 0):
        if dim < 1 or M < 2 or ef_construction < 1 or ef_search < 1 or not 0 <= seed < 2**63:
            raise ValueError(
                f"invalid HNSW parameters dim={dim} M={M} ef_construction={ef_construction} "
                f"ef_search={ef_search} seed={seed}"
            )
        self.dim = int(dim)
        self.M = int(M)
        self.ef_construction = int(ef_construction)
        self.ef_search = int(ef_search)
        self.seed = int(seed)
        self.model_id = ""  # set by ``load`` to the model id stored in the file
        self._graph = _empty_graph(self.dim, self.M, 0, 0)
        self._write_lock = threading.RLock()
        self._thread_scratch = threading.local()
        self._id_lookup: tuple[np.ndarray, int, np.ndarray, np.ndarray] | None = None

    # -- introspection ---------------------------------------------------------------

    def __len__(self) -> int:
        graph = self._graph
        return graph.node_count - graph.tombstone_count

    def __repr__(self) -> str:
        return f"HNSWIndex(dim={self.dim}, M={self.M}, live={len(self)}, tombstones={self._graph.tombstone_count})"

    @property
    def params(self) -> dict[str, int]:
        return {
            "dim": self.dim,
            "M": self.M,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "seed": self.seed,
        }

    @property
    def ids(self) -> np.ndarray:
        """External id of every row (read-only view, tombstoned rows included); a boolean
        mask for ``search(allowed=...)`` is indexed like this array."""
        view = self._graph.ids[: self._graph.node_count]
        view.flags.writeable = False
        return view

    @property
    def tombstone_fraction(self) -> float:
        graph = self._graph
        return graph.tombstone_count / graph.node_count if graph.node_count else 0.0

    @property
    def needs_compaction(self) -> bool:
        return self.tombstone_fraction >= COMPACT_TOMBSTONE_FRACTION

    def memory_bytes(self) -> int:
        """Bytes of the index arrays including spare capacity (memory-mapped arrays count
        in full even where the pages are not resident)."""
        return sum(array.nbytes for array in self._graph.arrays().values())

    # -- updates ---------------------------------------------------------------------

    def add(self, vectors: Any, ids: Any) -> None:
        """Insert ``vectors`` ([n, dim] or [dim]) with external ``ids`` into the graph.

        Vectors are L2-normalised.  Ids must be unique among the live nodes; an id whose node
        was deleted may be added again.
        """
        matrix = _as_matrix(vectors, self.dim, "vectors")
        self._insert(matrix, ids, _row_norms(matrix))

    def _insert(self, vectors: np.ndarray, ids: Any, norms: np.ndarray | None) -> None:
        """Insert rows, dividing them by ``norms`` (``None``: already normalised)."""
        ids = np.atleast_1d(np.asarray(ids))
        if ids.size and ids.dtype.kind not in "iu":
            raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
        ids = ids.astype(np.int64, copy=False)
        if ids.ndim != 1 or ids.shape[0] != vectors.shape[0]:
            raise ValueError(f"got {vectors.shape[0]} vectors but ids of shape {ids.shape}")
        if np.unique(ids).shape[0] != ids.shape[0]:
            raise ValueError("ids passed to add() contain duplicates")
        count = ids.shape[0]
        if count == 0:
            return
        with self._write_lock:
            graph = self._graph
            live_rows = self._rows_for_ids(graph, ids)
            live_rows = live_rows[graph.tombstones[live_rows] == 0]
            if live_rows.size:
                raise ValueError(f"ids already in the index: {graph.ids[live_rows[:5]].tolist()}")
            first, stop = graph.node_count, graph.node_count + count
            levels = _draw_levels(self.seed, first, count, 1.0 / math.log(self.M))
            block_sizes = levels.astype(np.int64) * (self.M + 1)
            offsets = graph.upper_used + np.cumsum(block_sizes) - block_sizes
            upper_stop = graph.upper_used + int(block_sizes.sum())

            graph = self._reserved(graph, stop, upper_stop)
            if norms is None:
                graph.vectors[first:stop] = vectors
            else:
                np.divide(vectors, norms, out=graph.vectors[first:stop])
            graph.ids[first:stop] = ids
            graph.levels[first:stop] = levels
            graph.upper_offsets[first:stop] = offsets
            marks = np.zeros(graph.capacity, np.uint32)
            entry_point, max_level = _insert_rows(
                first,
                stop,
                graph.vectors,
                graph.levels,
                graph.links0,
                graph.upper_links,
                graph.upper_offsets,
                self.M,
                self.ef_construction,
                graph.entry_point,
                graph.max_level,
                marks,
                np.zeros(1, np.uint32),
            )
            self._graph = dataclasses.replace(
                graph, node_count=stop, upper_used=upper_stop, entry_point=int(entry_point), max_level=int(max_level)
            )

    def _reserved(self, graph: _Graph, rows: int, upper_values: int) -> _Graph:
        """A snapshot whose arrays hold ``rows`` nodes and ``upper_values`` upper-layer
        ints, growing (copying) them geometrically if needed; published immediately."""
        capacity, upper_capacity = graph.capacity, graph.upper_links.shape[0]
        if rows <= capacity and upper_values <= upper_capacity:
            return graph
        if rows > capacity:
            capacity = max(rows, 2 * capacity, _MIN_CAPACITY)
        if upper_values > upper_capacity:
            upper_capacity = max(upper_values, 2 * upper_capacity, _MIN_CAPACITY)
        grown = _empty_graph(self.dim, self.M, capacity, upper_capacity)
        for name, array in graph.used_arrays(self.M).items():
            getattr(grown, name)[: array.shape[0]] = array
        grown = dataclasses.replace(
            grown,
            node_count=graph.node_count,
            upper_used=graph.upper_used,
            tombstone_count=graph.tombstone_count,
            entry_point=graph.entry_point,
            max_level=graph.max_level,
        )
        self._graph = grown
        return grown

    def delete(self, ids: Any) -> int:
        """Tombstone the live nodes with these external ids (unknown ids are ignored).
        Returns the number of nodes deleted.  Deleted nodes stay in the graph for traversal
        until ``compact``."""
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        with self._write_lock:
            graph = self._graph
            rows = self._rows_for_ids(graph, ids)
            rows = rows[graph.tombstones[rows] == 0]
            graph.tombstones[rows] = 1
            self._graph = dataclasses.replace(graph, tombstone_count=graph.tombstone_count + int(rows.size))
            return int(rows.size)

    def compact(self) -> int:
        """Rebuild the graph from the live nodes, dropping tombstones.  Returns how many
        tombstoned rows were removed."""
        with self._write_lock:
            graph = self._graph
            if graph.tombstone_count == 0:
                return 0
            live = np.flatnonzero(graph.tombstones[: graph.node_count] == 0)
            rebuilt = HNSWIndex(**self.params)
            rebuilt._insert(graph.vectors[live], graph.ids[live], norms=None)
            self._graph = rebuilt._graph
            return graph.tombstone_count

    # -- search ----------------------------------------------------------------------

    def search(
        self, query: Any, k: int = 10, ef: int | None = None, allowed: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k`` by cosine similarity.

        ``query`` is [dim] or [q, dim] (normalised internally).  ``ef`` is the layer-0 beam
        width (default ``ef_search``, at least ``k``).  ``allowed`` restricts results to a
        boolean mask over rows (indexed like ``self.ids``) or a collection of external ids.
        Returns ``(ids int64 [q, k], similarities float32 [q, k])`` sorted by similarity
        descending; missing results (fewer than ``k`` candidates) are id -1, similarity -inf.
        """
        graph = self._graph
        queries = _as_matrix(query, self.dim, "query")
        ef = max(self.ef_search if ef is None else int(ef), k)
        live_count = graph.node_count - graph.tombstone_count
        if live_count == 0 or k < 1:
            return _no_results(queries.shape[0], k)
        if allowed is None:
            excluded = graph.tombstones if graph.tombstone_count else _NOTHING_EXCLUDED
        else:
            returnable = self._allowed_rows(graph, allowed)
            if graph.tombstone_count:
                returnable &= graph.tombstones[: graph.node_count] == 0
            allowed_count = int(np.count_nonzero(returnable))
            allowed_fraction = allowed_count / live_count
            if allowed_count == 0:
                return _no_results(queries.shape[0], k)
            if allowed_fraction < BRUTE_FORCE_ALLOWED_FRACTION or allowed_count <= ef:
                rows = np.flatnonzero(returnable).astype(np.int32)
                return _scan_rows(queries, k, graph.vectors, graph.ids, rows)
            ef = max(ef, min(math.ceil(k / allowed_fraction), FILTERED_EF_CAP))
            excluded = (~returnable).view(np.uint8)
        marks, epoch_box = self._visited_marks(graph.vectors.shape[0])
        return _search_many(
            queries,
            k,
            ef,
            graph.vectors,
            graph.ids,
            graph.links0,
            graph.upper_links,
            graph.upper_offsets,
            self.M,
            graph.entry_point,
            graph.max_level,
            graph.node_count,
            excluded,
            marks,
            epoch_box,
        )

    def exact_search(
        self, query: Any, k: int = 10, ef: int | None = None, allowed: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Brute-force numpy search with the same signature and results layout as
        ``search`` (``ef`` is accepted for interchangeability and ignored); ground truth."""
        graph = self._graph
        queries = _as_matrix(query, self.dim, "query")
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-30)
        returnable = graph.tombstones[: graph.node_count] == 0
        if allowed is not None:
            returnable &= self._allowed_rows(graph, allowed)
        rows = np.flatnonzero(returnable)
        if rows.size == 0 or k < 1:
            return _no_results(queries.shape[0], k)
        all_rows = rows.size == graph.node_count
        candidates = graph.vectors[: graph.node_count] if all_rows else graph.vectors[rows]
        out_ids, out_sims = _no_results(queries.shape[0], k)
        take = min(k, rows.size)
        for begin in range(0, queries.shape[0], 256):
            batch = slice(begin, begin + 256)
            sims = queries[batch] @ candidates.T
            top = np.argpartition(-sims, take - 1, axis=1)[:, :take]
            top_sims = np.take_along_axis(sims, top, axis=1)
            order = np.argsort(-top_sims, axis=1, kind="stable")
            out_ids[batch, :take] = graph.ids[rows[np.take_along_axis(top, order, axis=1)]]
            out_sims[batch, :take] = np.take_along_axis(top_sims, order, axis=1)
        return out_ids, out_sims

    def _visited_marks(self, capacity: int) -> tuple[np.ndarray, np.ndarray]:
        """This thread's visited-marks array (epoch-stamped, reused across searches)."""
        scratch = self._thread_scratch
        try:
            marks, epoch_box = scratch.marks_and_epoch
        except AttributeError:
            marks = None
        if marks is None or marks.shape[0] < capacity:
            marks, epoch_box = np.zeros(capacity, np.uint32), np.zeros(1, np.uint32)
            scratch.marks_and_epoch = marks, epoch_box
        return marks, epoch_box

    def _allowed_rows(self, graph: _Graph, allowed: Any) -> np.ndarray:
        """Boolean row mask (a fresh array) from a row mask or a collection of external ids."""
        if isinstance(allowed, np.ndarray) and allowed.dtype == np.bool_:
            if allowed.shape != (graph.node_count,):
                raise ValueError(f"allowed mask must have shape ({graph.node_count},), got {allowed.shape}")
            return allowed.copy()
        if isinstance(allowed, (set, frozenset)):
            allowed = np.fromiter(allowed, np.int64, len(allowed))
        mask = np.zeros(graph.node_count, np.bool_)
        mask[self._rows_for_ids(graph, np.asarray(allowed, np.int64).ravel())] = True
        return mask

    def _rows_for_ids(self, graph: _Graph, ids: np.ndarray) -> np.ndarray:
        """All rows (live or tombstoned) whose external id is in ``ids``."""
        lookup = self._id_lookup
        if lookup is None or lookup[0] is not graph.ids or lookup[1] != graph.node_count:
            order = np.argsort(graph.ids[: graph.node_count], kind="stable")
            lookup = (graph.ids, graph.node_count, order, graph.ids[order])
            self._id_lookup = lookup
        order, sorted_ids = lookup[2], lookup[3]
        first = np.searchsorted(sorted_ids, ids, side="left")
        matches = np.searchsorted(sorted_ids, ids, side="right") - first
        starts = np.repeat(first, matches)
        within = np.arange(starts.size) - np.repeat(np.cumsum(matches) - matches, matches)
        return order[starts + within]

    # -- persistence -----------------------------------------------------------------

    def save(self, path: str | os.PathLike, model_id: str = "") -> None:
        """Write the index atomically to ``path`` (format in the module docstring)."""
        path = Path(path)
        model_bytes = model_id.encode("utf-8")
        with self._write_lock:
            graph = self._graph
            arrays = graph.used_arrays(self.M)
            header_end = _HEADER.size + len(model_bytes) + _TABLE.size + _CRC.size
            table, position = [], _aligned(header_end)
            for name in _ARRAY_NAMES:
                table += [position, arrays[name].nbytes]
                position = _aligned(position + arrays[name].nbytes)
            file_size = table[-2] + table[-1]
            header = (
                _HEADER.pack(
                    FORMAT_MAGIC,
                    FORMAT_VERSION,
                    self.dim,
                    self.M,
                    self.ef_construction,
                    self.ef_search,
                    self.seed,
                    graph.node_count,
                    graph.tombstone_count,
                    graph.entry_point,
                    graph.max_level,
                    len(model_bytes),
                    graph.upper_used,
                    file_size,
                )
                + model_bytes
                + _TABLE.pack(*table)
            )
            header += _CRC.pack(zlib.crc32(header))
            temp_path = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            try:
                with open(temp_path, "xb") as stream:  # same directory: os.replace is atomic
                    stream.write(header)
                    for name, offset in zip(_ARRAY_NAMES, table[::2], strict=True):
                        stream.write(bytes(offset - stream.tell()))
                        _write_array(stream, arrays[name].astype(_ARRAY_DTYPES[name], copy=False))
                    stream.flush()
                    os.fsync(stream.fileno())
                os.replace(temp_path, path)
            except BaseException:
                temp_path.unlink(missing_ok=True)
                raise
            _fsync_directory(path.parent)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        expected_dim: int | None = None,
        expected_model_id: str | None = None,
        mmap: bool = True,
    ) -> HNSWIndex:
        """Read an index written by ``save``.

        With ``mmap=True`` the arrays are copy-on-write memory maps of the file (pages load
        on demand; later updates stay private to this process).  Raises ``IndexFileError``
        if the file is damaged or its dimension / model id differ from the expected ones.
        """
        path = Path(path)
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if mmap and size > 0:
                mapping = mmap_module.mmap(stream.fileno(), 0, access=mmap_module.ACCESS_COPY)
                data = np.frombuffer(mapping, dtype=np.uint8)
            else:
                data = np.fromfile(stream, dtype=np.uint8)
        header = _read_header(path, data)
        if expected_dim is not None and header["dim"] != expected_dim:
            raise IndexFileError(path, f"has vectors of dimension {header['dim']}, expected {expected_dim}")
        if expected_model_id is not None and header["model_id"] != expected_model_id:
            raise IndexFileError(path, f"was built with model {header['model_id']!r}, expected {expected_model_id!r}")
        index = cls(header["dim"], header["M"], header["ef_construction"], header["ef_search"], header["seed"])
        index.model_id = header["model_id"]
        arrays = _array_views(path, data, header)
        _validate_graph(path, header, arrays)
        index._graph = _Graph(
            **arrays,
            node_count=header["node_count"],
            upper_used=header["upper_links_length"],
            tombstone_count=header["tombstone_count"],
            entry_point=header["entry_point"],
            max_level=header["max_level"],
        )
        return index


def _no_results(n_queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = max(k, 0)
    return (np.full((n_queries, k), -1, np.int64), np.full((n_queries, k), -np.inf, np.float32))


def _aligned(position: int) -> int:
    return -(-position // ARRAY_ALIGNMENT) * ARRAY_ALIGNMENT


def _write_array(stream, array: np.ndarray) -> None:
    stream.write(memoryview(np.ascontiguousarray(array)).cast("B"))


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself; not supported on every platform, hence best effort."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _read_header(path: Path, data: np.ndarray) -> dict[str, Any]:
    size = data.shape[0]
    if size < _HEADER.size:
        raise IndexFileError(path, f"is truncated: expected at least {_HEADER.size} header bytes, found {size}")
    (
        magic,
        version,
        dim,
        M,
        ef_construction,
        ef_search,
        seed,
        node_count,
        tombstone_count,
        entry_point,
        max_level,
        model_id_length,
        upper_links_length,
        file_size,
    ) = _HEADER.unpack(data[: _HEADER.size].tobytes())
    if magic != FORMAT_MAGIC:
        raise IndexFileError(path, f"is not an HNSW index (magic bytes {magic!r}, expected {FORMAT_MAGIC!r})")
    if version != FORMAT_VERSION:
        raise IndexFileError(
            path, f"has unsupported format version {version} (this library reads version {FORMAT_VERSION})"
        )
    header_end = _HEADER.size + model_id_length + _TABLE.size + _CRC.size
    if size < header_end:
        raise IndexFileError(path, f"is truncated: expected at least {header_end} header bytes, found {size}")
    header_bytes = data[: header_end - _CRC.size].tobytes()
    (stored_crc,) = _CRC.unpack(data[header_end - _CRC.size : header_end].tobytes())
    if zlib.crc32(header_bytes) != stored_crc:
        raise IndexFileError(path, "has a corrupt header (checksum mismatch)")
    if size != file_size:
        problem = "is truncated" if size < file_size else "has trailing garbage"
        raise IndexFileError(path, f"{problem}: expected {file_size} bytes, found {size}")
    if dim < 1 or M < 2 or ef_construction < 1 or ef_search < 1:
        raise IndexFileError(
            path, f"has invalid parameters dim={dim} M={M} ef_construction={ef_construction} ef_search={ef_search}"
        )
    model_start = _HEADER.size
    try:
        model_id = header_bytes[model_start : model_start + model_id_length].decode("utf-8")
    except UnicodeDecodeError as error:
        raise IndexFileError(path, f"has a model id that is not utf-8 ({error})") from None
    table = _TABLE.unpack(header_bytes[model_start + model_id_length :])
    return {
        "dim": dim,
        "M": M,
        "ef_construction": ef_construction,
        "ef_search": ef_search,
        "seed": seed,
        "node_count": node_count,
        "tombstone_count": tombstone_count,
        "entry_point": entry_point,
        "max_level": max_level,
        "model_id": model_id,
        "upper_links_length": upper_links_length,
        "header_end": header_end,
        "table": dict(zip(_ARRAY_NAMES, zip(table[::2], table[1::2], strict=True), strict=True)),
    }


def _array_views(path: Path, data: np.ndarray, header: dict[str, Any]) -> dict[str, np.ndarray]:
    """Zero-copy views of the arrays in ``data``, checked against the array table."""
    n, dim, M = header["node_count"], header["dim"], header["M"]
    shapes = {
        "vectors": (n, dim),
        "ids": (n,),
        "levels": (n,),
        "links0": (n * (2 * M + 1),),
        "upper_offsets": (n,),
        "upper_links": (header["upper_links_length"],),
        "tombstones": (n,),
    }
    views, previous_end = {}, header["header_end"]
    for name in _ARRAY_NAMES:
        offset, nbytes = header["table"][name]
        dtype = _ARRAY_DTYPES[name]
        expected = math.prod(shapes[name]) * dtype.itemsize
        if nbytes != expected or offset % ARRAY_ALIGNMENT or offset < previous_end or offset + nbytes > data.shape[0]:
            raise IndexFileError(
                path,
                f"has an inconsistent array table entry for {name} "
                f"(offset {offset}, {nbytes} bytes, expected {expected})",
            )
        previous_end = offset + nbytes
        view = data[offset : offset + nbytes].view(dtype).reshape(shapes[name])
        views[name] = view.astype(dtype.newbyteorder("="), copy=False)
    return views


def _validate_graph(path: Path, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Check every structural invariant the compiled kernels rely on for memory safety."""
    n, M = header["node_count"], header["M"]
    entry_point, max_level = header["entry_point"], header["max_level"]
    levels = arrays["levels"]

    def fail(problem: str) -> None:
        raise IndexFileError(path, f"is corrupt: {problem}")

    if n == 0:
        if entry_point != -1 or max_level != -1 or header["upper_links_length"] != 0:
            fail("an empty index has an entry point or upper-layer links")
        return
    if not 0 <= entry_point < n:
        fail(f"entry point {entry_point} is outside the {n} nodes")
    if levels.min() < 0 or levels.max() != max_level or levels[entry_point] != max_level or max_level > _MAX_LEVEL:
        fail(f"node levels do not match the maximum level {max_level} of the entry point")
    block_sizes = levels.astype(np.int64) * (M + 1)
    expected_offsets = np.cumsum(block_sizes) - block_sizes
    if (
        not np.array_equal(arrays["upper_offsets"], expected_offsets)
        or int(block_sizes.sum()) != header["upper_links_length"]
    ):
        fail("upper-layer offsets do not match the node levels")
    tombstones = arrays["tombstones"]
    if tombstones.max() > 1 or int(tombstones.sum()) != header["tombstone_count"]:
        fail(f"tombstone flags do not add up to {header['tombstone_count']}")
    first_block = np.cumsum(levels) - levels  # each node's first block in upper_links
    upper_block_layers = np.arange(int(levels.sum())) - np.repeat(first_block, levels) + 1
    for name, max_links, block_layers in (("links0", 2 * M, None), ("upper_links", M, upper_block_layers)):
        blocks = arrays[name].reshape(-1, max_links + 1)
        for begin in range(0, blocks.shape[0], 65536):
            chunk = blocks[begin : begin + 65536]
            counts = chunk[:, 0]
            if counts.min() < 0 or counts.max() > max_links:
                fail(f"{name} has a link count outside 0..{max_links}")
            in_use = np.arange(max_links)[None, :] < counts[:, None]
            targets = np.where(in_use, chunk[:, 1:], 0)
            if ((targets < 0) | (targets >= n)).any():
                fail(f"{name} has links to nodes outside 0..{n - 1}")
            if (
                block_layers is not None
                and (in_use & (levels[targets] < block_layers[begin : begin + 65536, None])).any()
            ):
                fail(f"{name} links to nodes that do not reach the link's layer")
