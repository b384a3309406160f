// Exports of the flashneuron wasm module, the host's whole interface (typed for the host by
// scripts/abi.js → src/core/abi.ts). Listed by name so that what the modules share among
// themselves stays inside.
//
//   mem.ts, flash.ts     memory the host asks for; files read through WASI
//   kernels/             matvec / dot / axpy over every storage type, f32 vector kernels
//   forward.ts           config, weights, run state, the forward pass and the dense FFN
//   sparse.ts            FFN on flash: the wanted set (predictor, window/LRU over the caches)
//   planner.ts           FFN on flash: the reads (extents, rounds, staging)
//   silu.ts              FFN on flash for SiLU models: gate and up resident, |h| over a cut
//   teal.ts              optional input sparsity of the resident matrices (calibrated cuts)
//   cache.ts             one layer's preallocated neuron cache
//   stats.ts             traffic and time counters, the last read error
export { alloc, alloc_bytes, memory_bytes } from "./mem";
export { flash_open, flash_close, flash_read, crc32 } from "./flash";
export * from "./kernels/matvec";
export * from "./kernels/vec";
export * from "./kernels/axpy-list";
export * from "./kernels/sparse-input";
export {
  ARCH_OPT, ARCH_LLAMA, ACT_RELU, ACT_SILU, ACT_FATRELU, ACT_DRELU, ACT_GELU_TANH, NORM_LAYER, NORM_RMS,
  model_config, model_features, model_rope_llama3, set_kv_dtype, model_init,
  G_TOK_EMBED, G_POS_EMBED, G_NORM_W, G_NORM_B, G_LM_HEAD, G_LM_HEAD_B,
  L_LN1_W, L_LN1_B, L_Q, L_K, L_V, L_O, L_QB, L_KB, L_VB, L_OB, L_LN2_W, L_LN2_B, L_FFN, L_DOWN_B,
  set_global, set_layer, global_ptr, global_dt, layer_ptr, layer_dt, ffn_layout, ffn_bias_stride,
  x_ptr, xb_ptr, rope_cos_ptr, rope_sin_ptr, logits_ptr, activations_ptr, ffn_input_ptr,
  capture_ptr, set_capture_layer, embed_on_flash,
  forward, forward_begin, layer_attention, ffn_dense, layer_end, forward_end,
  set_check_layers, non_finite,
} from "./forward";
export {
  WANT_HOST, WANT_PREDICTOR, WANT_ALL, WANT_SILU, WINDOW_FOREVER, WINDOW_LRU,
  flash_init, flash_layer, flash_part, flash_part_stride, flash_row_bytes, flash_set_fd, flash_reset, flash_step,
  predictor_init, predictor_state_bytes, predictor_layer, predicted_ptr, predicted_count, set_predicted_count,
  ffn_begin, ffn_hits, round_done, cache_rows, cache_capacity,
  set_host_compute, moved_ptr, moved_count, hit_rows_ptr, hit_count, landed_first, landed_cached,
  landed_items, item_ids_ptr, item_ptrs_ptr, cache_rows_ptr, cache_pointers_ptr,
  VERIFY_OFF, VERIFY_FIRST, VERIFY_ALWAYS, IO_BAD_BUNDLE, flash_verify_init, bad_bundle,
} from "./sparse";
export { silu_init, silu_layer } from "./silu";
export { teal_init, teal_layer, teal_gather_below, teal_counts_ptr, teal_record_ptr, teal_reset } from "./teal";
export { threads_init, threads_ready, threads_read, threads_stop, worker_join, worker_part, pmatvec } from "./threads";
export {
  planner_costs, set_max_op_bytes, plan_round, plan_ptr, plan_capacity, plan_bytes, exec_plan_sync,
} from "./planner";
export {
  io_error, set_io_error, add_io, stats_reset, io_fail_offset, io_fail_len, io_fail_got,
  stat_bytes_read, stat_reads, stat_io_ms, stat_mem_ms, stat_compute_ms, stat_predict_ms,
} from "./stats";
export {
  cache_new, cache_bytes, cache_insert, cache_remove, cache_count, cache_slot, cache_row_ptr,
  cache_pointers, cache_clear, set_cache_moves,
} from "./cache";
