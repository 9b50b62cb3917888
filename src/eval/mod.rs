//! Sample quality: FID and improved precision / recall between two sets of feature vectors.
