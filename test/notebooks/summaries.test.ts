import * as assert from 'node:assert/strict';
import { summariesAgree } from '../../scripts/notebooks/summaries';

describe('notebook summary lines', () => {
  const quoted = 'SUMMARY 07: exact AUC at dampingScale 0.001: 0.649, 0.1: 0.705 (gradDot 0.994); LiSSA error 9.5e-1/1.5e-2';
  it('agree when only the last digits of a number move (another CPU kind rounds differently)', () => {
    assert.ok(summariesAgree(quoted, quoted));
    assert.ok(summariesAgree(quoted, quoted.replace('0.649', '0.647').replace('0.705', '0.704')));
  });
  it('disagree when a result moves, a word changes or a number appears', () => {
    assert.ok(!summariesAgree(quoted, quoted.replace('0.649', '0.660')));
    assert.ok(!summariesAgree(quoted, quoted.replace('1.5e-2', '2.5e-2')));
    assert.ok(!summariesAgree(quoted, quoted.replace('gradDot', 'dataInf')));
    assert.ok(!summariesAgree(quoted, `${quoted} 3`));
  });
});
