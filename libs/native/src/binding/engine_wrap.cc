#include "binding/engine_wrap.h"

#include "binding/model_wrap.h"
#include "binding/napi_util.h"

#include <functional>

namespace lmfleet {

Napi::FunctionReference EngineWrap::constructor;

namespace {

Napi::Array logprobs_to_js(Napi::Env env, const std::vector<LogprobInfo>& v) {
  Napi::Array lps = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); i++) {
    Napi::Object lp = Napi::Object::New(env);
    lp.Set("logprob", Napi::Number::New(env, v[i].logprob));
    Napi::Array top = Napi::Array::New(env, v[i].top.size());
    for (size_t j = 0; j < v[i].top.size(); j++) {
      Napi::Array pair = Napi::Array::New(env, 2);
      pair.Set(0u, Napi::Number::New(env, v[i].top[j].first));
      pair.Set(1u, Napi::Number::New(env, v[i].top[j].second));
      top.Set(j, pair);
    }
    lp.Set("top", top);
    if (v[i].rank > 0) lp.Set("rank", Napi::Number::New(env, v[i].rank));
    lps.Set(i, lp);
  }
  return lps;
}

Napi::Value event_to_js(Napi::Env env, const Event& e) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", Napi::Number::New(env, (double)e.id));
  switch (e.kind) {
    case Event::Tokens: {
      o.Set("type", "tokens");
      Napi::Array t = Napi::Array::New(env, e.tokens.size());
      for (size_t i = 0; i < e.tokens.size(); i++) t.Set(i, Napi::Number::New(env, e.tokens[i]));
      o.Set("tokens", t);
      if (e.has_logprobs) o.Set("logprobs", logprobs_to_js(env, e.logprobs));
      if (e.has_prompt_logprobs) o.Set("promptLogprobs", logprobs_to_js(env, e.prompt_logprobs));
      break;
    }
    case Event::Done:
      o.Set("type", "done");
      o.Set("finishReason", e.finish_reason);
      o.Set("promptTokens", Napi::Number::New(env, (double)e.prompt_tokens));
      o.Set("completionTokens", Napi::Number::New(env, (double)e.completion_tokens));
      o.Set("cachedTokens", Napi::Number::New(env, (double)e.cached_tokens));
      o.Set("draftTokens", Napi::Number::New(env, (double)e.draft_tokens));
      o.Set("acceptedTokens", Napi::Number::New(env, (double)e.accepted_tokens));
      o.Set("queuedMs", Napi::Number::New(env, e.queued_ms));
      o.Set("firstTokenMs", Napi::Number::New(env, e.first_token_ms));
      o.Set("totalMs", Napi::Number::New(env, e.total_ms));
      if (e.has_prompt_logprobs) o.Set("promptLogprobs", logprobs_to_js(env, e.prompt_logprobs));
      break;
    case Event::Error:
      o.Set("type", "error");
      o.Set("code", e.code);
      o.Set("message", e.message);
      break;
  }
  return o;
}

// A Uint32Array (or Int32Array: xgrammar's bitmasks) of allowed-token bits, copied.
std::vector<uint32_t> mask_from_js(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray()) fail(ErrorCode::InvalidArgument, std::string(what) + " must be a Uint32Array or Int32Array");
  Napi::TypedArray t = v.As<Napi::TypedArray>();
  if (t.TypedArrayType() != napi_uint32_array && t.TypedArrayType() != napi_int32_array)
    fail(ErrorCode::InvalidArgument, std::string(what) + " must be a Uint32Array or Int32Array");
  const auto* p = reinterpret_cast<const uint32_t*>(static_cast<const uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset());
  return std::vector<uint32_t>(p, p + t.ElementLength());
}

RequestSpec parse_request(const Napi::Value& v) {
  if (!v.IsObject()) fail(ErrorCode::InvalidArgument, "submit(req): req must be an object");
  Napi::Object o = v.As<Napi::Object>();
  RequestSpec r;
  r.id = (int64_t)get_number(o, "id", 0, true);
  r.session_id = (int64_t)get_number(o, "sessionId", 0);
  r.input_ids = ids_from_js(o.Get("inputIds"), "req.inputIds");
  r.max_new_tokens = (int64_t)get_number(o, "maxNewTokens", 0, true);
  Napi::Value stop = o.Get("stopIds");
  if (stop.IsArray()) {
    Napi::Array a = stop.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) r.stop_ids.push_back(a.Get(i).As<Napi::Number>().Int32Value());
  } else if (!stop.IsUndefined() && !stop.IsNull()) {
    fail(ErrorCode::InvalidArgument, "req.stopIds must be an array");
  }
  Napi::Value sv = o.Get("sampling");
  if (sv.IsObject()) {
    Napi::Object s = sv.As<Napi::Object>();
    r.sampling.temperature = (float)get_number(s, "temperature", 0);
    r.sampling.top_k = (int32_t)get_number(s, "topK", 0);
    r.sampling.top_p = (float)get_number(s, "topP", 1);
    r.sampling.min_p = (float)get_number(s, "minP", 0);
    r.sampling.repetition_penalty = (float)get_number(s, "repetitionPenalty", 1);
    r.sampling.presence_penalty = (float)get_number(s, "presencePenalty", 0);
    r.sampling.frequency_penalty = (float)get_number(s, "frequencyPenalty", 0);
    Napi::Value seed = s.Get("seed");
    if (!seed.IsUndefined() && !seed.IsNull()) {
      if (!seed.IsNumber()) fail(ErrorCode::InvalidArgument, "sampling.seed must be a number");
      r.sampling.has_seed = true;
      r.sampling.seed = (uint64_t)(int64_t)seed.As<Napi::Number>().DoubleValue();
    }
  }
  Napi::Value lp = o.Get("logprobs");
  if (lp.IsNumber()) r.logprobs = std::max(0, lp.As<Napi::Number>().Int32Value());
  Napi::Value plp = o.Get("promptLogprobs");
  if (plp.IsNumber()) r.prompt_logprobs = std::max(0, plp.As<Napi::Number>().Int32Value());
  Napi::Value bias = o.Get("logitBias");
  if (bias.IsArray()) {  // [[id, value], ...]
    Napi::Array a = bias.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value e = a.Get(i);
      if (!e.IsArray() || e.As<Napi::Array>().Length() != 2 || !e.As<Napi::Array>().Get(0u).IsNumber() ||
          !e.As<Napi::Array>().Get(1u).IsNumber())
        fail(ErrorCode::InvalidArgument, "req.logitBias must be an array of [tokenId, value] pairs");
      r.logit_bias.push_back({e.As<Napi::Array>().Get(0u).As<Napi::Number>().Int32Value(),
                              (float)e.As<Napi::Array>().Get(1u).As<Napi::Number>().DoubleValue()});
    }
  } else if (!bias.IsUndefined() && !bias.IsNull()) {
    fail(ErrorCode::InvalidArgument, "req.logitBias must be an array of [tokenId, value] pairs");
  }
  r.min_new_tokens = (int64_t)get_number(o, "minNewTokens", 0);
  Napi::Value allowed = o.Get("allowedTokens");
  if (!allowed.IsUndefined() && !allowed.IsNull()) {
    r.guided = true;
    r.allowed_tokens = mask_from_js(allowed, "req.allowedTokens");
  }
  return r;
}

}  // namespace

void EngineWrap::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function f = DefineClass(env, "NativeEngine",
                                 {InstanceMethod("start", &EngineWrap::Start), InstanceMethod("submit", &EngineWrap::Submit),
                                  InstanceMethod("cancel", &EngineWrap::Cancel),
                                  InstanceMethod("endSession", &EngineWrap::EndSession),
                                  InstanceMethod("setAllowedTokens", &EngineWrap::SetAllowedTokens),
                                  InstanceMethod("stats", &EngineWrap::Stats), InstanceMethod("dispose", &EngineWrap::Dispose)});
  constructor = Napi::Persistent(f);
  constructor.SuppressDestruct();
  exports.Set("createEngine", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    return constructor.New({info.Length() > 0 ? info[0] : info.Env().Undefined(),
                            info.Length() > 1 ? info[1] : info.Env().Undefined()});
  }, "createEngine"));
}

EngineWrap::EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
  js_guard(info.Env(), [&] {
    if (!info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(ModelWrap::constructor.Value()))
      fail(ErrorCode::InvalidArgument, "createEngine(model, opts): model must be a NativeModel");
    if (!info[1].IsObject()) fail(ErrorCode::InvalidArgument, "createEngine(model, opts): opts must be an object");
    auto model = ModelWrap::Unwrap(info[0].As<Napi::Object>())->model();
    Napi::Object o = info[1].As<Napi::Object>();
    EngineOptions opts;
    opts.max_batch_size = (int64_t)get_number(o, "maxBatchSize", 0, true);
    opts.block_size = (int64_t)get_number(o, "blockSize", 0, true);
    opts.num_blocks = (int64_t)get_number(o, "numBlocks", 0);
    opts.cache_max_entry_count = get_number(o, "cacheMaxEntryCount", 0);
    opts.session_len = (int64_t)get_number(o, "sessionLen", 0, true);
    opts.max_prefill_tokens = (int64_t)get_number(o, "maxPrefillTokens", 0);
    opts.enable_prefix_caching = get_bool(o, "enablePrefixCaching", false);
    opts.spec_draft_tokens = (int64_t)get_number(o, "specDraftTokens", 0);
    opts.spec_ngram_max = (int64_t)get_number(o, "specNgramMax", 4);
    opts.spec_ngram_min = (int64_t)get_number(o, "specNgramMin", 1);
    if (o.Has("holdEvents") && !o.Get("holdEvents").IsUndefined()) opts.hold_events = get_bool(o, "holdEvents", false) ? 1 : 0;
    core_ = std::make_unique<EngineCore>(model, opts);
  });
}

EngineWrap::~EngineWrap() { shutdown(); }

EngineCore& EngineWrap::core() {
  if (disposed_ || !core_) fail(ErrorCode::Disposed, "engine was disposed");
  return *core_;
}

void EngineWrap::shutdown() {
  if (core_) core_->stop();
  if (has_tsfn_) {
    tsfn_.Release();
    has_tsfn_ = false;
  }
}

Napi::Value EngineWrap::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return js_guard(env, [&]() -> Napi::Value {
    EngineCore& c = core();
    if (!info[0].IsFunction()) fail(ErrorCode::InvalidArgument, "start(onEvent): onEvent must be a function");
    if (has_tsfn_) fail(ErrorCode::InvalidArgument, "engine already started");
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "lmfleet-engine-events", 0, 1);
    has_tsfn_ = true;
    Napi::ThreadSafeFunction tsfn = tsfn_;
    c.start([tsfn](std::vector<Event>&& events) mutable {
      auto* batch = new std::vector<Event>(std::move(events));
      napi_status st = tsfn.NonBlockingCall(batch, [](Napi::Env env, Napi::Function cb, std::vector<Event>* data) {
        std::unique_ptr<std::vector<Event>> owned(data);
        if (!env || !cb) return;
        Napi::Array arr = Napi::Array::New(env, owned->size());
        for (size_t i = 0; i < owned->size(); i++) arr.Set(i, event_to_js(env, (*owned)[i]));
        try {
          cb.Call({arr});
        } catch (const Napi::Error& e) {
          e.ThrowAsJavaScriptException();  // the listener threw: surface it as an uncaught exception
        }
      });
      if (st != napi_ok) delete batch;
    });
    return env.Undefined();
  });
}

Napi::Value EngineWrap::Submit(const Napi::CallbackInfo& info) {
  return js_guard(info.Env(), [&]() -> Napi::Value {
    EngineCore& c = core();
    if (info[0].IsArray()) {  // several at once: validated together, admitted in the same step
      Napi::Array a = info[0].As<Napi::Array>();
      std::vector<RequestSpec> reqs;
      for (uint32_t i = 0; i < a.Length(); i++) reqs.push_back(parse_request(a.Get(i)));
      c.submit_many(std::move(reqs));
    } else {
      c.submit(parse_request(info[0]));
    }
    return info.Env().Undefined();
  });
}

Napi::Value EngineWrap::Cancel(const Napi::CallbackInfo& info) {
  return js_guard(info.Env(), [&]() -> Napi::Value {
    if (!info[0].IsNumber()) fail(ErrorCode::InvalidArgument, "cancel(id): id must be a number");
    core().cancel(info[0].As<Napi::Number>().Int64Value());
    return info.Env().Undefined();
  });
}

Napi::Value EngineWrap::EndSession(const Napi::CallbackInfo& info) {
  return js_guard(info.Env(), [&]() -> Napi::Value {
    if (!info[0].IsNumber()) fail(ErrorCode::InvalidArgument, "endSession(sessionId): sessionId must be a number");
    core().end_session(info[0].As<Napi::Number>().Int64Value());
    return info.Env().Undefined();
  });
}

Napi::Value EngineWrap::SetAllowedTokens(const Napi::CallbackInfo& info) {
  return js_guard(info.Env(), [&]() -> Napi::Value {
    if (!info[0].IsNumber()) fail(ErrorCode::InvalidArgument, "setAllowedTokens(id, mask): id must be a number");
    core().set_allowed(info[0].As<Napi::Number>().Int64Value(), mask_from_js(info[1], "setAllowedTokens(id, mask): mask"));
    return info.Env().Undefined();
  });
}

Napi::Value EngineWrap::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return js_guard(env, [&]() -> Napi::Value {
    EngineStatsSnapshot s = core().stats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("running", Napi::Number::New(env, (double)s.running));
    o.Set("waiting", Napi::Number::New(env, (double)s.waiting));
    o.Set("blocksTotal", Napi::Number::New(env, (double)s.blocks_total));
    o.Set("blocksFree", Napi::Number::New(env, (double)s.blocks_free));
    o.Set("blocksCached", Napi::Number::New(env, (double)s.blocks_cached));
    o.Set("specDraftTokens", Napi::Number::New(env, (double)s.spec_draft_tokens));
    o.Set("specAcceptedTokens", Napi::Number::New(env, (double)s.spec_accepted_tokens));
    o.Set("blockSize", Napi::Number::New(env, (double)s.block_size));
    o.Set("sessions", Napi::Number::New(env, (double)s.sessions));
    o.Set("steps", Napi::Number::New(env, (double)s.steps));
    return o;
  });
}

namespace {
// Stops the batch thread off the JS thread (a CPU step can take a while), then releases the
// ThreadSafeFunction on the JS thread once the last events are queued.
class DisposeWorker : public CodedWorker {
 public:
  DisposeWorker(Napi::Env env, EngineCore* core, std::function<void()> on_js) : CodedWorker(env), core_(core), on_js_(std::move(on_js)) {}

 protected:
  void run() override {
    if (core_) core_->stop();
  }
  Napi::Value result(Napi::Env env) override {
    on_js_();
    return env.Undefined();
  }
  void OnError(const Napi::Error& e) override {
    on_js_();
    CodedWorker::OnError(e);
  }

 private:
  EngineCore* core_;
  std::function<void()> on_js_;
};
}  // namespace

Napi::Value EngineWrap::Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (disposed_) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(env.Undefined());
    return d.Promise();
  }
  disposed_ = true;
  Ref();  // keep this wrapper (and core_) alive until the worker is done
  auto* w = new DisposeWorker(env, core_.get(), [this] {
    shutdown();  // thread already joined; releases the ThreadSafeFunction
    core_.reset();
    Unref();
  });
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace lmfleet
