"""Stream jobs on Kafka (Faust): store readings, judge them with the detection rules, emit alerts."""
