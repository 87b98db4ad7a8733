// The image flags every command that reads data shares (slim/data/model_data.h applies them).
#include "commands.h"

namespace slim::cli {

void add_image_flags(CLI::App* cmd, ImageFlags* f) {
  cmd->add_option("--image-size", f->size,
                  "folder images resized to H,W (default: the model's input size, else 224,224)");
  cmd->add_option("--mean", f->mean,
                  "folder images: per-channel mean on [0,1] pixels, 'imagenet' (torchvision's) or "
                  "a,b,c (default: imagenet for RGB models, 0.5 for grayscale)");
  cmd->add_option("--std", f->std, "folder images: per-channel std, like --mean");
  cmd->add_option("--channel-order", f->order,
                  "folder images: channel order the model expects (rgb or bgr)")
      ->check(CLI::IsMember({"rgb", "bgr"}));
}

}  // namespace slim::cli
