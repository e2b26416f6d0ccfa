/** Training: learning-rate schedules, pretraining from scratch, LoRA fine-tuning with HF-style checkpoints. */
export { learningRateAt, makeSchedule, warmupSteps, ScheduleInput, ScheduleName, ScheduleSpec } from './schedule';
export { pretrain, PretrainOptions, TrainLog } from './pretrain';
export { finetuneLora, FinetuneOptions, FinetuneResult, EpochInfo } from './finetune';
export {
  readTrainerState,
  writeTrainerState,
  checkpointLearningRates,
  CheckpointLearningRate,
  TrainerState,
  TrainerLogEntry,
  TrainerCheckpointEntry,
  TRAINER_STATE_FILE,
} from './trainerState';
export { LoraDropout } from './loraDropout';
export { createAdam, setLearningRate, epochBatches, permutation, LossReduction, AdamOptions } from './common';
