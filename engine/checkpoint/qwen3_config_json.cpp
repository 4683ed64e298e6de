#include "engine/checkpoint/qwen3_config_json.h"

#include <fstream>

#include "fp8lm/numerics.h"

namespace fp8lm {

namespace {

using nlohmann::json;

std::string type_name(const json& v) { return v.is_number_integer() ? "integer" : v.type_name(); }

// A required (or, with `optional`, defaulted) field of a given type; messages name file and field.
class Fields {
 public:
  Fields(const json& j, const std::string& where) : j_(j), where_(where) {}

  Status integer(const char* key, int* out, bool optional = false, int min_value = 1) const {
    const json* v = get(key);
    if (v == nullptr) return optional ? Status::Ok() : missing(key, "an integer");
    if (!v->is_number_integer()) return wrong(key, "an integer", *v);
    const std::int64_t x = v->get<std::int64_t>();
    if (x < min_value || x > INT32_MAX)
      return Status::Error(where_ + ": field \"" + key + "\" = " + std::to_string(x) + " must be >= " +
                           std::to_string(min_value));
    *out = static_cast<int>(x);
    return Status::Ok();
  }
  Status number(const char* key, double* out, bool optional = false) const {
    const json* v = get(key);
    if (v == nullptr) return optional ? Status::Ok() : missing(key, "a number");
    if (!v->is_number()) return wrong(key, "a number", *v);
    *out = v->get<double>();
    return Status::Ok();
  }
  Status boolean(const char* key, bool* out) const {
    const json* v = get(key);
    if (v == nullptr) return Status::Ok();
    if (!v->is_boolean()) return wrong(key, "true or false", *v);
    *out = v->get<bool>();
    return Status::Ok();
  }
  Status string(const char* key, std::string* out, bool optional = false) const {
    const json* v = get(key);
    if (v == nullptr) return optional ? Status::Ok() : missing(key, "a string");
    if (!v->is_string()) return wrong(key, "a string", *v);
    *out = v->get<std::string>();
    return Status::Ok();
  }
  // Absent and null are both "not set".
  const json* get(const char* key) const {
    const auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  Status error(const std::string& what) const { return Status::Error(where_ + ": " + what); }

 private:
  Status missing(const char* key, const char* expected) const {
    return Status::Error(where_ + ": missing field \"" + key + "\" (expected " + expected + ")");
  }
  Status wrong(const char* key, const char* expected, const json& v) const {
    return Status::Error(where_ + ": field \"" + key + "\" must be " + expected + ", got " + type_name(v) + " " +
                         v.dump());
  }
  const json& j_;
  std::string where_;
};

Status parse_quantization(const json& q, const std::string& where, Qwen3Config* c) {
  const std::string qwhere = where + ": quantization_config";
  if (!q.is_object()) return Status::Error(qwhere + " must be an object");
  const Fields f(q, qwhere);
  std::string method, fmt = "e4m3", activation = "dynamic";
  FP8LM_RETURN_IF_ERROR(f.string("quant_method", &method));
  if (method != "fp8")
    return f.error("unsupported quant_method \"" + method +
                   "\" (fp8lm loads fp8 blockwise checkpoints and unquantized bf16 ones)");
  FP8LM_RETURN_IF_ERROR(f.string("fmt", &fmt, true));
  if (fmt != "e4m3") return f.error("unsupported fmt \"" + fmt + "\" (only e4m3)");
  FP8LM_RETURN_IF_ERROR(f.string("activation_scheme", &activation, true));
  if (activation != "dynamic")
    return f.error("unsupported activation_scheme \"" + activation + "\" (only dynamic)");
  const json* block = f.get("weight_block_size");
  if (block == nullptr)
    return f.error("missing weight_block_size (per-tensor FP8 is unsupported; expected [128, 128])");
  if (*block != json::array({kQuantGroup, kQuantGroup}))
    return f.error("unsupported weight_block_size " + block->dump() + " (only [128, 128])");
  if (const json* m = f.get("modules_to_not_convert")) {
    if (!m->is_array()) return f.error("modules_to_not_convert must be a list of strings");
    for (const json& s : *m) {
      if (!s.is_string()) return f.error("modules_to_not_convert must be a list of strings, got " + s.dump());
      c->modules_to_not_convert.push_back(s.get<std::string>());
    }
  }
  c->fp8 = true;
  return Status::Ok();
}

}  // namespace

Status read_json_file(const std::string& path, json* out) {
  std::ifstream in(path);
  if (!in) return Status::Error(path + ": cannot open");
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Error(path + ": not a JSON object");
  *out = std::move(j);
  return Status::Ok();
}

Status parse_qwen3_config(const json& j, const std::string& where, Qwen3Config* out) {
  if (!j.is_object()) return Status::Error(where + ": not a JSON object");
  const Fields f(j, where);
  Qwen3Config c;
  FP8LM_RETURN_IF_ERROR(f.string("model_type", &c.model_type));
  if (c.model_type != "qwen3" && c.model_type != "qwen3_moe")
    return f.error("unsupported model_type \"" + c.model_type + "\" (fp8lm runs qwen3 and qwen3_moe)");
  FP8LM_RETURN_IF_ERROR(f.integer("vocab_size", &c.vocab_size));
  FP8LM_RETURN_IF_ERROR(f.integer("hidden_size", &c.hidden_size));
  FP8LM_RETURN_IF_ERROR(f.integer("intermediate_size", &c.intermediate_size));
  FP8LM_RETURN_IF_ERROR(f.integer("num_hidden_layers", &c.num_hidden_layers));
  FP8LM_RETURN_IF_ERROR(f.integer("num_attention_heads", &c.num_attention_heads));
  FP8LM_RETURN_IF_ERROR(f.integer("num_key_value_heads", &c.num_key_value_heads));
  FP8LM_RETURN_IF_ERROR(f.integer("head_dim", &c.head_dim, true));
  FP8LM_RETURN_IF_ERROR(f.number("rms_norm_eps", &c.rms_norm_eps));
  FP8LM_RETURN_IF_ERROR(f.number("rope_theta", &c.rope_theta));
  FP8LM_RETURN_IF_ERROR(f.integer("max_position_embeddings", &c.max_position_embeddings));
  FP8LM_RETURN_IF_ERROR(f.boolean("tie_word_embeddings", &c.tie_word_embeddings));
  FP8LM_RETURN_IF_ERROR(f.integer("bos_token_id", &c.bos_token_id, true, 0));
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    return f.error("num_attention_heads " + std::to_string(c.num_attention_heads) +
                   " is not a multiple of num_key_value_heads " + std::to_string(c.num_key_value_heads));

  // Features of the architecture family that the official Qwen3 models leave off and fp8lm lacks.
  bool flag = false;
  FP8LM_RETURN_IF_ERROR(f.boolean("attention_bias", &flag));
  if (flag) return f.error("attention_bias = true is not supported");
  FP8LM_RETURN_IF_ERROR(f.boolean("use_sliding_window", &flag));
  if (flag) return f.error("use_sliding_window = true is not supported");
  if (const json* rs = f.get("rope_scaling")) return f.error("rope_scaling " + rs->dump() + " is not supported");
  std::string act = "silu";
  FP8LM_RETURN_IF_ERROR(f.string("hidden_act", &act, true));
  if (act != "silu") return f.error("hidden_act \"" + act + "\" is not supported (only silu)");

  if (c.model_type == "qwen3_moe") {
    FP8LM_RETURN_IF_ERROR(f.integer("num_experts", &c.num_experts));
    FP8LM_RETURN_IF_ERROR(f.integer("num_experts_per_tok", &c.num_experts_per_tok));
    FP8LM_RETURN_IF_ERROR(f.integer("moe_intermediate_size", &c.moe_intermediate_size));
    FP8LM_RETURN_IF_ERROR(f.integer("decoder_sparse_step", &c.decoder_sparse_step, true));
    FP8LM_RETURN_IF_ERROR(f.boolean("norm_topk_prob", &c.norm_topk_prob));
    if (c.num_experts_per_tok > c.num_experts)
      return f.error("num_experts_per_tok " + std::to_string(c.num_experts_per_tok) + " exceeds num_experts " +
                     std::to_string(c.num_experts));
    if (const json* m = f.get("mlp_only_layers")) {
      if (!m->is_array()) return f.error("field \"mlp_only_layers\" must be a list of layer indices");
      for (const json& v : *m) {
        if (!v.is_number_integer()) return f.error("field \"mlp_only_layers\" must be a list of layer indices");
        c.mlp_only_layers.push_back(v.get<int>());
      }
    }
  }
  if (const json* q = f.get("quantization_config")) FP8LM_RETURN_IF_ERROR(parse_quantization(*q, where, &c));
  *out = std::move(c);
  return Status::Ok();
}

Status read_qwen3_config(const std::string& path, Qwen3Config* out) {
  json j;
  FP8LM_RETURN_IF_ERROR(read_json_file(path, &j));
  return parse_qwen3_config(j, path, out);
}

Status parse_generation_config(const json& j, const std::string& where, GenerationConfig* out) {
  if (!j.is_object()) return Status::Error(where + ": not a JSON object");
  const Fields f(j, where);
  GenerationConfig g;
  if (const json* eos = f.get("eos_token_id")) {
    g.eos_token_ids.clear();
    const json list = eos->is_array() ? *eos : json::array({*eos});
    for (const json& id : list) {
      if (!id.is_number_integer() || id.get<std::int64_t>() < 0)
        return f.error("field \"eos_token_id\" must be a token id or a list of them, got " + eos->dump());
      g.eos_token_ids.push_back(id.get<int>());
    }
  }
  FP8LM_RETURN_IF_ERROR(f.number("temperature", &g.temperature, true));
  FP8LM_RETURN_IF_ERROR(f.integer("top_k", &g.top_k, true, 0));
  FP8LM_RETURN_IF_ERROR(f.number("top_p", &g.top_p, true));
  FP8LM_RETURN_IF_ERROR(f.number("min_p", &g.min_p, true));
  *out = std::move(g);
  return Status::Ok();
}

Status read_generation_config(const std::string& path, GenerationConfig* out) {
  json j;
  FP8LM_RETURN_IF_ERROR(read_json_file(path, &j));
  return parse_generation_config(j, path, out);
}

nlohmann::ordered_json qwen3_config_to_json(const Qwen3Config& c) {
  const bool moe = c.is_moe();
  nlohmann::ordered_json j;
  j["architectures"] = {moe ? "Qwen3MoeForCausalLM" : "Qwen3ForCausalLM"};
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["bos_token_id"] = c.bos_token_id;
  if (moe) j["decoder_sparse_step"] = c.decoder_sparse_step;
  j["eos_token_id"] = 151645;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["hidden_size"] = c.hidden_size;
  j["initializer_range"] = 0.02;
  j["intermediate_size"] = c.intermediate_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["max_window_layers"] = c.num_hidden_layers;
  if (moe) {
    j["mlp_only_layers"] = c.mlp_only_layers;
    j["moe_intermediate_size"] = c.moe_intermediate_size;
  }
  j["model_type"] = c.model_type;
  if (moe) j["norm_topk_prob"] = c.norm_topk_prob;
  j["num_attention_heads"] = c.num_attention_heads;
  if (moe) {
    j["num_experts"] = c.num_experts;
    j["num_experts_per_tok"] = c.num_experts_per_tok;
  }
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_key_value_heads"] = c.num_key_value_heads;
  if (c.fp8) {
    nlohmann::ordered_json q;
    q["activation_scheme"] = "dynamic";
    q["fmt"] = "e4m3";
    q["quant_method"] = "fp8";
    q["weight_block_size"] = {kQuantGroup, kQuantGroup};
    if (!c.modules_to_not_convert.empty()) q["modules_to_not_convert"] = c.modules_to_not_convert;
    j["quantization_config"] = q;
  }
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_scaling"] = nullptr;
  j["rope_theta"] = c.rope_theta;
  j["sliding_window"] = nullptr;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["torch_dtype"] = "bfloat16";
  j["transformers_version"] = "4.51.0";
  j["use_cache"] = true;
  j["use_sliding_window"] = false;
  j["vocab_size"] = c.vocab_size;
  return j;
}

nlohmann::ordered_json generation_config_to_json(const GenerationConfig& g, int bos_token_id) {
  nlohmann::ordered_json j;
  j["bos_token_id"] = bos_token_id;
  j["do_sample"] = true;
  j["eos_token_id"] = g.eos_token_ids;
  j["pad_token_id"] = bos_token_id;
  j["temperature"] = g.temperature;
  j["top_k"] = g.top_k;
  j["top_p"] = g.top_p;
  j["transformers_version"] = "4.51.0";
  return j;
}

}  // namespace fp8lm
