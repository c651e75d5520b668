#include "apps/checkpoint_model.h"

#include "distributed/checkpoint.h"

namespace moda::app {

CheckpointModel load_checkpoint_model(const std::string& path, Device device, bool verify) {
  LoadedCheckpoint ck = load_checkpoint(path, /*with_optimizer=*/false, verify);
  CheckpointModel out;
  out.dir = ck.dir;
  out.state = ck.state;
  out.config = ck.state.at("config");
  nn::ModelConfig model_cfg = nn::model_config_from_json(out.config.at("model"));
  out.model = std::make_unique<nn::LanguageModel>(
      model_cfg, nn::ModelInit{0, device, device.is_cuda() ? DType::BF16 : DType::F32});
  out.model->load_state_dict(ck.model.tensors);
  return out;
}

}  // namespace moda::app
