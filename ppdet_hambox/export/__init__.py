"""Export for deployment: the Paddle Inference / ONNX export, the exported
model's predictor, int8 quantisation and the model's cost."""
