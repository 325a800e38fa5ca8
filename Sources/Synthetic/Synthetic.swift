// Placeholder: the synthetic ultrasound generator lands here.
public enum SyntheticPlaceholder {}
