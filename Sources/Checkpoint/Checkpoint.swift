// Placeholder: HDF5 checkpoints in Keras' legacy .h5 weights layout land here.
import Model
