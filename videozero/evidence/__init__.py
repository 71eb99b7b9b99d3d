"""Evidence mining: the questioner's first half. Finds shots and salient, temporally localised
evidence segments (shot, event and frame level) in raw videos and stores them."""
