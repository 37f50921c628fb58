/**
 * Union-find over keys (columns, as the semantic pass names them), each class carrying the first
 * value found for it: `a = b` puts a and b in one class; `a = 5` gives a's class the value 5.
 */
export class EquivalenceClasses<V> {
  private readonly parent = new Map<string, string>();
  private readonly values = new Map<string, V>();

  union(a: string, b: string): void {
    const rootA = this.find(a);
    const rootB = this.find(b);
    if (rootA === rootB) return;
    this.parent.set(rootB, rootA);
    const valueB = this.values.get(rootB);
    if (valueB !== undefined && !this.values.has(rootA)) this.values.set(rootA, valueB);
  }

  /** Gives `key`'s class a value, unless it has one. */
  set(key: string, value: V): void {
    const root = this.find(key);
    if (!this.values.has(root)) this.values.set(root, value);
  }

  valueOf(key: string): V | undefined {
    return this.values.get(this.find(key));
  }

  same(a: string, b: string): boolean {
    return this.find(a) === this.find(b);
  }

  find(key: string): string {
    let root = key;
    for (let up = this.parent.get(root); up !== undefined; up = this.parent.get(root)) root = up;
    if (root !== key) this.parent.set(key, root);
    return root;
  }
}
